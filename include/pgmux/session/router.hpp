// (database, user) -> pool. Pools are made on first use from the database entry that
// serves the name (the exact entry, else "*").
#pragma once
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgmux/config/config.hpp"
#include "pgmux/server/pool.hpp"

namespace pgmux::net {

struct tls_contexts;
class tls_server_context;

class router {
 public:
  // `tls`: the TLS contexts `cfg` needs (make_tls_contexts), built off the worker threads.
  router(worker_set& workers, std::shared_ptr<const config::config> cfg, std::shared_ptr<const tls_contexts> tls);

  struct route_result {
    std::shared_ptr<server_pool> pool;
    std::string error;  // when pool is null
  };
  // The pool serving a client that asked for `database` as `user`. `keys`: the SCRAM keys the
  // client proved, remembered by the pool when its server user is the client's (passthrough).
  route_result route(const std::string& database, const std::string& user, const scram_keys& keys = {});

  // The pool that runs auth_query for clients of `database`: its server user is auth.auth_user,
  // else the user of the database's DSN (an error when neither names one).
  route_result auth_query_pool(const std::string& database);

  // Opens the pools whose server user is fixed by their DSN, so min_size is warm at start.
  void start();
  // Applies a new config: changed pools are updated in place, pools of removed databases
  // drain (their idle connections close now, lent ones when given back), new databases
  // with a fixed server user open their min_size. New clients get the new TLS contexts.
  void reload(std::shared_ptr<const config::config> cfg, std::shared_ptr<const tls_contexts> tls);
  void stop();

  // PAUSE / RESUME of one database's pools (every pool when `database` is empty), including
  // pools made later for it. Returns an error text for a database pgmux does not serve.
  std::string pause(const std::string& database);
  std::string resume(const std::string& database);
  bool paused(const std::string& database) const;

  std::shared_ptr<const config::config> config() const;
  // What new clients start TLS with; null when tls.mode is disable.
  std::shared_ptr<const tls_server_context> client_tls() const;
  std::vector<std::shared_ptr<server_pool>> pools() const;

 private:
  std::shared_ptr<server_pool> make_pool(const config::database_config& db, const std::string& database,
                                         const std::string& server_user);
  // With mu_ held: the pool of (database, server_user), made from `db` when there is none yet
  // (`created` is then set; the caller starts it after unlocking).
  std::shared_ptr<server_pool> find_or_make_pool(const config::database_config& db, const std::string& database,
                                                 const std::string& server_user, std::shared_ptr<server_pool>& created);
  // With mu_ held: creates the fixed-user pools `cfg_` names that do not exist yet.
  std::vector<std::shared_ptr<server_pool>> create_fixed_pools();

  worker_set& workers_;
  mutable std::mutex mu_;
  std::shared_ptr<const config::config> cfg_;
  std::shared_ptr<const tls_contexts> tls_;  // always set, and consistent with cfg_
  std::unordered_map<std::string, std::shared_ptr<server_pool>> pools_;  // key: database '\0' server user
  bool stopped_ = false;
  bool paused_all_ = false;
  std::set<std::string> paused_databases_;
};

}  // namespace pgmux::net
