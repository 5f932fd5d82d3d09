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

std::shared_ptr<server_pool> router::make_pool(const config::database_config& db, const std::string& database,
                                               const std::string& user) {
  const auto& t = db.target;
  server_login login;
  login.address = server_address{t.host, t.port};
  login.user = t.user.empty() ? user : t.user;
  login.database = t.dbname.empty() ? database : t.dbname;
  login.password = config::resolve_password(t, login.user, login.database);
  login.application_name = t.application_name.empty() ? "pgmux" : t.application_name;
  login.options = t.options;
  auto settings = db.pool;
  if (t.connect_timeout) settings.connect_timeout = *t.connect_timeout;
  return std::make_shared<server_pool>(io_, database + "/" + login.user, std::move(login), settings);
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
    for (const auto& [name, db] : cfg_->databases) {
      if (name == "*" || db.target.user.empty()) continue;
      auto p = make_pool(db, name, db.target.user);
      pools_.emplace(name + '\0' + db.target.user, p);
      created.push_back(std::move(p));
    }
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
