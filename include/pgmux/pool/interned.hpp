// One shared record per distinct value: clients that ask for the same thing (an application's
// clients usually send the same startup settings) hold one copy between them instead of one
// each. At most `limit` distinct values are tracked; past that (after dropping the ones nobody
// holds any more) a value gets a record of its own. Not thread-safe: the owner locks.
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

namespace pgmux::pool {

template <typename T>
class interned {
 public:
  explicit interned(std::size_t limit) : limit_(limit) {}

  std::shared_ptr<const T> share(T value) {
    for (const auto& kept : kept_)
      if (auto same = kept.lock(); same && *same == value) return same;
    if (kept_.size() >= limit_) std::erase_if(kept_, [](const auto& kept) { return kept.expired(); });
    auto made = std::make_shared<const T>(std::move(value));
    if (kept_.size() < limit_) kept_.push_back(made);
    return made;
  }

  std::size_t tracked() const noexcept { return kept_.size(); }

 private:
  std::size_t limit_;
  std::vector<std::weak_ptr<const T>> kept_;
};

}  // namespace pgmux::pool
