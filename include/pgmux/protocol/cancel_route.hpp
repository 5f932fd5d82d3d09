// Cancel keys across several pgmux instances. With `instance_id` set, the top byte of the
// secret of every key an instance hands out is its id, so that a CancelRequest that lands on
// another instance (processes sharing a port, replicas behind one address) can be sent on to
// the owner. A request sent on carries a mark (the sign bit of the pid, which no key handed to a
// client has) and is never sent on again: one hop, no loops. Pure.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "pgmux/protocol/messages.hpp"

namespace pgmux::protocol {

// Instance ids are 1..255 (8 bits of the secret); 0 means none is configured.
inline constexpr unsigned max_instance_id = 255;

// `key` with the top byte of its secret set to `instance` (nothing changes for instance 0).
cancel_key with_instance(cancel_key key, std::uint8_t instance) noexcept;
std::uint8_t instance_of(cancel_key key) noexcept;

cancel_key mark_forwarded(cancel_key key) noexcept;
bool is_forwarded(cancel_key key) noexcept;
cancel_key without_forward_mark(cancel_key key) noexcept;

enum class cancel_route {
  local,    // a key of this instance's: cancel here (or nothing, when no session has it)
  forward,  // another instance's, and it is a peer: send it there, marked
  drop,     // forged, misrouted or already sent on once: nothing is cancelled
};

struct cancel_decision {
  cancel_route route = cancel_route::drop;
  cancel_key key;  // what to look up (local) or to send (forward, marked)
  std::uint8_t peer = 0;
};

// Where a CancelRequest for `key` goes, at an instance with id `own` (0: no peering) whose
// peers are `peers` (id -> address). `known_here`: a session of this instance has the key.
cancel_decision route_cancel(cancel_key key, std::uint8_t own, bool known_here,
                             const std::map<unsigned, std::string>& peers);

}  // namespace pgmux::protocol
