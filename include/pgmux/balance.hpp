// Where a newly accepted client lives. With several workers, each accepts on a listening socket
// of its own, and the kernel picks the socket at random: a client that stays on the worker that
// accepted it costs no hand-over between threads, but a few long-lived clients could then pile
// up on one worker. Pure, so that it is unit-tested.
#pragma once
#include <algorithm>

namespace pgmux {

// The worker for a client accepted on worker `own`, given how many clients each of `workers`
// holds now (`clients(i)`): `own`, unless taking it would put `own` more than `slack` clients
// above the least loaded worker, then that one. The slack grows with the load (an eighth of the
// average per worker, at least 1), so that under many connections a client seldom moves while a
// handful of long-lived ones spread as evenly as dealt in turn.
template <class Clients>
unsigned balanced_worker(unsigned own, unsigned workers, Clients clients) {
  long total = 0, least = 0;
  unsigned least_worker = own;
  for (unsigned w = 0; w < workers; ++w) {
    const long n = std::max(0L, static_cast<long>(clients(w)));
    total += n;
    if (w == 0 || n < least) least = n, least_worker = w;
  }
  const long slack = std::max(1L, total / static_cast<long>(std::max(workers, 1u)) / 8);
  const long mine = std::max(0L, static_cast<long>(clients(own)));
  return mine + 1 > least + slack ? least_worker : own;
}

}  // namespace pgmux
