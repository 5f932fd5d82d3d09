// Prepared statements in transaction pooling: what each client has prepared under its own
// names, and which server-side statements exist on each server connection. A statement is
// prepared on a server under a name derived from its definition, so every client that prepares
// the same SQL with the same parameter types shares one server statement.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgmux::protocol {

struct statement_def {
  std::string server_name;  // "pgmux_" + 32 hex digits, see make_statement
  std::string query;
  std::string param_types;  // raw big-endian int32 OIDs, as in Parse
};

using statement_ptr = std::shared_ptr<const statement_def>;

// One of a client's named statements: its definition, and what the client was told of the
// rows it returns. PostgreSQL fixes a prepared statement's result type when it is prepared and
// fails every later use with 0A000 once a schema change alters it; pgmux, which prepares the
// same definition afresh on other server connections, keeps that promise here.
struct client_statement {
  statement_ptr def;
  // The result type the client was shown by a Describe of the statement or of a portal bound
  // from it (row_shape in prepared.hpp); 0 until then.
  std::uint64_t shape = 0;
  // It no longer matches: every Bind or Describe fails with 0A000 until the client prepares
  // the name again, or the server's type matches again.
  bool result_changed = false;
};

// The definition of a client's Parse. server_name is the first 128 bits of SHA-256 over the
// query's length, the query and the types: a cryptographic hash, so that no client can craft
// SQL that collides with another client's statement and have its own SQL run in its place.
statement_ptr make_statement(std::string_view query, std::string_view param_types);

// One client's prepared statements by the names it chose. "" is the unnamed statement, kept
// apart with a generation that counts the client's unnamed Parses: a server connection that
// recorded (client, generation) when it received that Parse still holds that statement.
class client_statements {
 public:
  // A Parse under `name` (re)defines it.
  void add(std::string_view name, statement_ptr def);
  // The definition under `name`, or a null pointer.
  const statement_ptr& find(std::string_view name) const noexcept;
  // The named statement `name` ("" is not one), or nullptr.
  client_statement* named(std::string_view name) noexcept;
  // Close, or (for "") a simple Query, which drops the unnamed statement. False when absent.
  bool erase(std::string_view name);
  // DISCARD ALL / DEALLOCATE ALL. The generation keeps counting.
  void clear() noexcept;
  std::size_t size() const noexcept { return named_ ? named_->size() : 0; }  // named statements only
  // Bytes the named statements keep: names, SQL text and parameter types.
  std::size_t bytes() const noexcept { return bytes_; }
  static std::size_t cost(std::string_view name, std::string_view query, std::string_view param_types) noexcept {
    return name.size() + query.size() + param_types.size();
  }

  const statement_ptr& unnamed() const noexcept { return unnamed_; }
  std::uint64_t unnamed_generation() const noexcept { return unnamed_generation_; }

 private:
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Created with the first named statement (and dropped by clear()): an idle client that never
  // had one (most, and every one using the unnamed statement only) pays a pointer, not a table.
  std::unique_ptr<std::unordered_map<std::string, client_statement, name_hash, std::equal_to<>>> named_;
  statement_ptr unnamed_;
  std::uint64_t unnamed_generation_ = 0;
  std::size_t bytes_ = 0;
};

// The server-side statements prepared on one server connection, least recently used last, at
// most `capacity` of them (max_prepared_statements) except while pins forbid evicting. Every
// operation is O(1) apart from skipping pinned names during an eviction.
class server_statements {
 public:
  explicit server_statements(std::size_t capacity = 1000) : capacity_(capacity) {}

  bool contains(std::string_view name) const noexcept { return index_.contains(name); }
  // Marks `name` most recently used. False when absent.
  bool touch(std::string_view name) noexcept;
  // Records `name` as prepared, most recently used, and appends to `evicted` the names dropped
  // to stay within capacity: the least recently used ones that are neither pinned nor `name`.
  // The relay Closes them on the server. False when `name` was already there (then only touched).
  bool insert(std::string_view name, std::vector<std::string>& evicted);
  // Keeps `name` through evictions until unpin_all, for the batch in flight that uses it; also
  // marks it most recently used. False when absent.
  bool pin(std::string_view name) noexcept;
  void unpin_all() noexcept { ++pin_epoch_; }
  bool pinned(std::string_view name) const noexcept;
  // The server dropped it (DEALLOCATE, a failed Parse, an error that says it is gone).
  bool erase(std::string_view name) noexcept;
  // The result type of `name` as prepared on this connection (row_shape), 0 when unknown or
  // absent. A Parse sent afresh makes it unknown again.
  std::uint64_t shape(std::string_view name) const noexcept;
  void set_shape(std::string_view name, std::uint64_t shape) noexcept;
  void clear() noexcept;
  // A new max_prepared_statements; evicts like insert when it shrinks.
  void set_capacity(std::size_t capacity, std::vector<std::string>& evicted);

  std::size_t size() const noexcept { return index_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  // Names from most to least recently used (tests, SHOW commands).
  std::vector<std::string> names() const;

 private:
  struct node {
    std::string name;
    std::uint64_t pinned_in = 0;  // pinned while equal to pin_epoch_
    std::uint64_t shape = 0;
  };
  using list_type = std::list<node>;

  void evict(std::vector<std::string>& evicted, const node* keep);

  list_type lru_;  // front: most recently used
  // Keys view the names inside lru_ nodes, which never move.
  std::unordered_map<std::string_view, list_type::iterator> index_;
  std::size_t capacity_;
  std::uint64_t pin_epoch_ = 1;
};

}  // namespace pgmux::protocol
