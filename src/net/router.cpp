// Routing clients to pools.
#include "pgmux/net/router.hpp"

namespace pgmux::net {

router::router(asio::io_context& io, std::shared_ptr<const config::config> cfg) : io_(io), cfg_(std::move(cfg)) {}

std::shared_ptr<const config::config> router::config() const {
  std::lock_guard lock(mu_);
  return cfg_;
}

std::vector<std::shared_ptr<server_pool>> router::pools() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<server_pool>> out;
  for (auto& [key, p] : pools_) out.push_back(p);
  return out;
}

namespace {

// The login and settings a pool for (database, user) gets from its config entry.
server_login login_for(const config::database_config& db, const std::string& database, const std::string& user) {
  const auto& t = db.target;
  server_login login;
  login.address = server_address{t.host, t.port};
  login.user = t.user.empty() ? user : t.user;
  login.database = t.dbname.empty() ? database : t.dbname;
  login.password = config::resolve_password(t, login.user, login.database);
  login.application_name = t.application_name.empty() ? "pgmux" : t.application_name;
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
                                               const std::string& user) {
  auto p = std::make_shared<server_pool>(io_, database, db.name, login_for(db, database, user), settings_for(db));
  if (paused_all_ || paused_databases_.count(database)) p->set_paused(true);
  return p;
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

void router::reload(std::shared_ptr<const config::config> cfg) {
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
    for (auto it = pools_.begin(); it != pools_.end();) {
      const std::string& database = it->second->database();
      const std::string& server_user = it->second->server_user();
      const auto* db = config::find_database(*cfg_, database);
      // Gone, served by another entry now, or as another server user: that pool is no
      // longer reachable, and its clients must come through routing again.
      if (!db || db->name != it->second->entry() || (!db->target.user.empty() && db->target.user != server_user)) {
        removed.push_back(std::move(it->second));
        it = pools_.erase(it);
        continue;
      }
      updates.push_back({it->second, settings_for(*db), login_for(*db, database, server_user)});
      ++it;
    }
    created = create_fixed_pools();
  }
  for (auto& p : removed) p->stop("database \"" + p->name() + "\" was removed from the configuration");
  for (auto& u : updates) u.pool->update(u.settings, u.login);
  for (auto& p : created) p->start();
}

router::route_result router::route(const std::string& database, const std::string& user) {
  std::shared_ptr<server_pool> created;
  route_result result;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return {nullptr, "pgmux is shutting down"};
    const auto* db = config::find_database(*cfg_, database);
    if (!db) return {nullptr, "no such database: " + database};
    const std::string server_user = db->target.user.empty() ? user : db->target.user;
    const std::string key = database + '\0' + server_user;
    auto it = pools_.find(key);
    if (it != pools_.end()) return {it->second, {}};
    created = make_pool(*db, database, user);
    pools_.emplace(key, created);
    result.pool = created;
  }
  created->start();
  return result;
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
