// Statement definitions, per-client statement names and per-server statement sets.
#include "pgmux/protocol/statements.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace pgmux::protocol {
namespace {

const statement_ptr no_statement;

}  // namespace

statement_ptr make_statement(std::string_view query, std::string_view param_types) {
  // The length prefix makes the split between query and types unambiguous whatever bytes
  // either holds.
  unsigned char length[8];
  auto n = static_cast<std::uint64_t>(query.size());
  for (int i = 7; i >= 0; --i, n >>= 8) length[i] = static_cast<unsigned char>(n);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, length, sizeof length) == 1 &&
                  EVP_DigestUpdate(ctx, query.data(), query.size()) == 1 &&
                  EVP_DigestUpdate(ctx, param_types.data(), param_types.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, digest, &digest_size) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || digest_size < 16) throw std::runtime_error("SHA-256 failed");

  static constexpr char hex[] = "0123456789abcdef";
  auto def = std::make_shared<statement_def>();
  def->server_name.reserve(6 + 32);
  def->server_name = "pgmux_";
  for (int i = 0; i < 16; ++i) {
    def->server_name.push_back(hex[digest[i] >> 4]);
    def->server_name.push_back(hex[digest[i] & 15]);
  }
  def->query = query;
  def->param_types = param_types;
  return def;
}

void client_statements::add(std::string_view name, statement_ptr def) {
  if (name.empty()) {
    unnamed_ = std::move(def);
    ++unnamed_generation_;
    return;
  }
  const std::size_t added = def ? cost(name, def->query, def->param_types) : 0;
  if (!named_) named_ = std::make_unique<decltype(named_)::element_type>();
  if (auto it = named_->find(name); it != named_->end()) {
    if (it->second.def) bytes_ -= cost(name, it->second.def->query, it->second.def->param_types);
    it->second = client_statement{std::move(def)};  // prepared again: a fresh result type
  } else {
    named_->emplace(std::string(name), client_statement{std::move(def)});
  }
  bytes_ += added;
}

const statement_ptr& client_statements::find(std::string_view name) const noexcept {
  if (name.empty()) return unnamed_;
  if (!named_) return no_statement;
  const auto it = named_->find(name);
  return it == named_->end() ? no_statement : it->second.def;
}

client_statement* client_statements::named(std::string_view name) noexcept {
  if (name.empty() || !named_) return nullptr;
  const auto it = named_->find(name);
  return it == named_->end() ? nullptr : &it->second;
}

bool client_statements::erase(std::string_view name) {
  if (name.empty()) {
    const bool had = unnamed_ != nullptr;
    unnamed_.reset();
    return had;
  }
  if (!named_) return false;
  const auto it = named_->find(name);
  if (it == named_->end()) return false;
  if (it->second.def) bytes_ -= cost(name, it->second.def->query, it->second.def->param_types);
  named_->erase(it);
  return true;
}

void client_statements::clear() noexcept {
  named_.reset();
  bytes_ = 0;
  unnamed_.reset();
}

bool server_statements::touch(std::string_view name) noexcept {
  const auto it = index_.find(name);
  if (it == index_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second);
  return true;
}

bool server_statements::insert(std::string_view name, std::vector<std::string>& evicted) {
  if (touch(name)) return false;
  lru_.push_front(node{std::string(name)});
  index_.emplace(lru_.front().name, lru_.begin());
  evict(evicted, &lru_.front());
  return true;
}

bool server_statements::pin(std::string_view name) noexcept {
  const auto it = index_.find(name);
  if (it == index_.end()) return false;
  it->second->pinned_in = pin_epoch_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return true;
}

bool server_statements::pinned(std::string_view name) const noexcept {
  const auto it = index_.find(name);
  return it != index_.end() && it->second->pinned_in == pin_epoch_;
}

bool server_statements::erase(std::string_view name) noexcept {
  const auto it = index_.find(name);
  if (it == index_.end()) return false;
  const auto node_it = it->second;
  index_.erase(it);  // before the node: the key views its name
  lru_.erase(node_it);
  return true;
}

std::uint64_t server_statements::shape(std::string_view name) const noexcept {
  const auto it = index_.find(name);
  return it == index_.end() ? 0 : it->second->shape;
}

void server_statements::set_shape(std::string_view name, std::uint64_t shape) noexcept {
  if (const auto it = index_.find(name); it != index_.end()) it->second->shape = shape;
}

void server_statements::clear() noexcept {
  index_.clear();
  lru_.clear();
}

void server_statements::set_capacity(std::size_t capacity, std::vector<std::string>& evicted) {
  capacity_ = capacity;
  evict(evicted, nullptr);
}

std::vector<std::string> server_statements::names() const {
  std::vector<std::string> out;
  out.reserve(lru_.size());
  for (const auto& n : lru_) out.push_back(n.name);
  return out;
}

void server_statements::evict(std::vector<std::string>& evicted, const node* keep) {
  // Pinned names sit near the front (pin moves them there), so the walk from the back rarely
  // has to step over one.
  auto it = lru_.end();
  while (index_.size() > capacity_ && it != lru_.begin()) {
    --it;
    if (&*it == keep || it->pinned_in == pin_epoch_) continue;
    index_.erase(std::string_view(it->name));
    evicted.push_back(std::move(it->name));
    it = lru_.erase(it);
  }
}

}  // namespace pgmux::protocol
