// Routing clients to pools.
#include "pgmux/session/router.hpp"

#include "pgmux/io/tls.hpp"

namespace pgmux::net {

router::router(worker_set& workers, std::shared_ptr<const config::config> cfg, std::shared_ptr<const tls_contexts> tls)
    : workers_(workers), cfg_(std::move(cfg)), tls_(tls ? std::move(tls) : std::make_shared<const tls_contexts>()) {}

std::shared_ptr<const config::config> router::config() const {
  std::lock_guard lock(mu_);
  return cfg_;
}

std::shared_ptr<const tls_server_context> router::client_tls() const {
  std::lock_guard lock(mu_);
  return tls_->clients;
}

std::vector<std::shared_ptr<server_pool>> router::pools() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<server_pool>> out;
  for (auto& [key, p] : pools_) out.push_back(p);
  return out;
}

namespace {

// The login a pool for (database, server user) gets from its config entry. The server user is
// the DSN's, or the client's when the DSN names none, or auth.auth_user for auth_query's pool.
server_login login_for(const config::database_config& db, const std::string& database, const std::string& server_user,
                       const tls_contexts& tls) {
  const auto& t = db.target;
  server_login login;
  if (auto it = tls.servers.find(db.name); t.tls_possible() && it != tls.servers.end()) {
    login.tls.mode = t.sslmode;
    login.tls.host = t.tls_host;
    login.tls.sni = t.sslsni;
    login.tls.context = it->second;
    login.tls.context_key = it->second->key();
  }
  login.address = server_address{t.host, t.port};
  login.user = server_user;
  login.database = t.dbname.empty() ? database : t.dbname;
  // A DSN that names its user has that user's password, which is not auth_user's.
  if (t.user.empty() || t.user == server_user)
    login.password = config::resolve_password(t, login.user, login.database);
  else
    login.password = config::lookup_passfile(t.passfile_contents, t.host, t.port, login.database, login.user)
                         .value_or(std::string{});
  // None unless the DSN names one: a client that sets no application_name sees the server's
  // default (''), as on a direct connection.
  login.application_name = t.application_name;
  login.options = t.options;
  return login;
}

config::pool_settings settings_for(const config::database_config& db) {
  auto settings = db.pool;
  if (db.target.connect_timeout) settings.connect_timeout = *db.target.connect_timeout;
  return settings;
}

}  // namespace

std::shared_ptr<server_pool> router::make_pool(const config::database_config& db, const std::string& database,
                                               const std::string& server_user) {
  auto p = std::make_shared<server_pool>(workers_, database, db.name, login_for(db, database, server_user, *tls_),
                                         settings_for(db));
  if (paused_all_ || paused_databases_.count(database)) p->set_paused(true);
  return p;
}

std::shared_ptr<server_pool> router::find_or_make_pool(const config::database_config& db, const std::string& database,
                                                       const std::string& server_user,
                                                       std::shared_ptr<server_pool>& created) {
  const std::string key = database + '\0' + server_user;
  if (auto it = pools_.find(key); it != pools_.end()) return it->second;
  created = make_pool(db, database, server_user);
  pools_.emplace(key, created);
  return created;
}

std::string router::pause(const std::string& database) {
  std::vector<std::shared_ptr<server_pool>> affected;
  {
    std::lock_guard lock(mu_);
    if (!database.empty() && !config::find_database(*cfg_, database)) return "no such database: " + database;
    if (database.empty()) paused_all_ = true;
    else paused_databases_.insert(database);
    for (auto& [key, p] : pools_)
      if (database.empty() || p->database() == database) affected.push_back(p);
  }
  for (auto& p : affected) p->set_paused(true);
  return {};
}

std::string router::resume(const std::string& database) {
  std::vector<std::shared_ptr<server_pool>> affected;
  {
    std::lock_guard lock(mu_);
    if (database.empty()) {
      paused_all_ = false;
      paused_databases_.clear();
    } else {
      if (paused_all_) return "all databases are paused: RESUME them all, without a name";
      if (!paused_databases_.erase(database)) return "database " + database + " is not paused";
    }
    for (auto& [key, p] : pools_)
      if (database.empty() || p->database() == database) affected.push_back(p);
  }
  for (auto& p : affected) p->set_paused(false);
  return {};
}

bool router::paused(const std::string& database) const {
  std::lock_guard lock(mu_);
  return paused_all_ || paused_databases_.count(database) > 0;
}

std::vector<std::shared_ptr<server_pool>> router::create_fixed_pools() {
  std::vector<std::shared_ptr<server_pool>> created;
  for (const auto& [name, db] : cfg_->databases) {
    if (name == "*" || db.target.user.empty()) continue;
    const std::string key = name + '\0' + db.target.user;
    if (pools_.count(key)) continue;
    auto p = make_pool(db, name, db.target.user);
    pools_.emplace(key, p);
    created.push_back(std::move(p));
  }
  return created;
}

void router::reload(std::shared_ptr<const config::config> cfg, std::shared_ptr<const tls_contexts> tls) {
  struct change {
    std::shared_ptr<server_pool> pool;
    config::pool_settings settings;
    server_login login;
  };
  std::vector<change> updates;
  std::vector<std::shared_ptr<server_pool>> removed, created;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    cfg_ = std::move(cfg);
    tls_ = tls ? std::move(tls) : std::make_shared<const tls_contexts>();
    for (auto it = pools_.begin(); it != pools_.end();) {
      const std::string& database = it->second->database();
      const std::string& server_user = it->second->server_user();
      const auto* db = config::find_database(*cfg_, database);
      // Gone, served by another entry now, or as another server user: that pool is no
      // longer reachable, and its clients must come through routing again.
      const bool runs_auth_query = !cfg_->auth.auth_query.empty() && server_user == cfg_->auth.auth_user;
      if (!db || db->name != it->second->entry() ||
          (!db->target.user.empty() && db->target.user != server_user && !runs_auth_query)) {
        removed.push_back(std::move(it->second));
        it = pools_.erase(it);
        continue;
      }
      updates.push_back({it->second, settings_for(*db), login_for(*db, database, server_user, *tls_)});
      ++it;
    }
    created = create_fixed_pools();
  }
  for (auto& p : removed) p->stop("database \"" + p->name() + "\" was removed from the configuration");
  for (auto& u : updates) u.pool->update(u.settings, u.login);
  for (auto& p : created) p->start();
}

router::route_result router::route(const std::string& database, const std::string& user, const scram_keys& keys) {
  std::shared_ptr<server_pool> created, pool;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return {nullptr, "pgmux is shutting down"};
    const auto* db = config::find_database(*cfg_, database);
    if (!db) return {nullptr, "no such database: " + database};
    const std::string server_user = db->target.user.empty() ? user : db->target.user;
    pool = find_or_make_pool(*db, database, server_user, created);
  }
  // Before start(): the pool's first connections may already use them.
  if (!keys.empty() && pool->server_user() == user) pool->remember_scram_keys(keys);
  if (created) created->start();
  return {std::move(pool), {}};
}

router::route_result router::auth_query_pool(const std::string& database) {
  std::shared_ptr<server_pool> created, pool;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return {nullptr, "pgmux is shutting down"};
    const auto* db = config::find_database(*cfg_, database);
    if (!db) return {nullptr, "no such database: " + database};
    const std::string& server_user = cfg_->auth.auth_user.empty() ? db->target.user : cfg_->auth.auth_user;
    if (server_user.empty())
      return {nullptr, "auth_query has no user to run as: set auth.auth_user, or a user in the DSN of database \"" +
                           db->name + "\""};
    pool = find_or_make_pool(*db, database, server_user, created);
  }
  if (created) created->start();
  return {std::move(pool), {}};
}

void router::start() {
  std::vector<std::shared_ptr<server_pool>> created;
  {
    std::lock_guard lock(mu_);
    created = create_fixed_pools();
  }
  for (auto& p : created) p->start();
}

void router::stop() {
  std::vector<std::shared_ptr<server_pool>> all;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    for (auto& [key, p] : pools_) all.push_back(p);
  }
  for (auto& p : all) p->stop();
}

}  // namespace pgmux::net
