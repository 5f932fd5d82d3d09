// Handing freed memory back to the system.
#pragma once

namespace pgmux::net {

// Asks the allocator to return the free pages it keeps (glibc keeps freed memory in its arenas,
// and scattered small blocks keep whole pages), on a thread of its own so that no worker waits
// for it. Requests made while one runs are folded into one more run. For the end of a session
// that held much memory (a client's prepared statements), not for every free.
void release_freed_memory();

}  // namespace pgmux::net
