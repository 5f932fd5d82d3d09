// Routing CancelRequests between instances.
#include "pgmux/protocol/cancel_route.hpp"

namespace pgmux::protocol {
namespace {

constexpr std::uint32_t instance_shift = 24;
constexpr std::uint32_t instance_mask = 0xffu << instance_shift;
constexpr std::uint32_t forward_mark = 0x80000000u;

}  // namespace

cancel_key with_instance(cancel_key key, std::uint8_t instance) noexcept {
  if (instance == 0) return key;
  const auto secret = (static_cast<std::uint32_t>(key.secret) & ~instance_mask) | (std::uint32_t{instance} << instance_shift);
  key.secret = static_cast<std::int32_t>(secret);
  return key;
}

std::uint8_t instance_of(cancel_key key) noexcept {
  return static_cast<std::uint8_t>(static_cast<std::uint32_t>(key.secret) >> instance_shift);
}

cancel_key mark_forwarded(cancel_key key) noexcept {
  key.pid = static_cast<std::int32_t>(static_cast<std::uint32_t>(key.pid) | forward_mark);
  return key;
}

bool is_forwarded(cancel_key key) noexcept { return (static_cast<std::uint32_t>(key.pid) & forward_mark) != 0; }

cancel_key without_forward_mark(cancel_key key) noexcept {
  key.pid = static_cast<std::int32_t>(static_cast<std::uint32_t>(key.pid) & ~forward_mark);
  return key;
}

cancel_decision route_cancel(cancel_key key, std::uint8_t own, bool known_here,
                             const std::map<unsigned, std::string>& peers) {
  const bool forwarded = is_forwarded(key);
  const auto plain = without_forward_mark(key);
  if (known_here) return {cancel_route::local, plain, 0};
  const auto owner = instance_of(plain);
  // Without peering, or for a key that says it is this instance's, there is nowhere else to look.
  if (own == 0 || forwarded || owner == own || owner == 0) return {cancel_route::drop, plain, 0};
  if (peers.count(owner) == 0) return {cancel_route::drop, plain, 0};
  return {cancel_route::forward, mark_forwarded(plain), owner};
}

}  // namespace pgmux::protocol
