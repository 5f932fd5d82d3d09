// Reload on a changed config file without a signal ("watch_config"): as a Kubernetes ConfigMap
// mounted in a pod changes under the running process. Linux inotify on the file's directory, read
// by the event loop; nothing polls.
#pragma once
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace pgmux::app {

class config_watch {
 public:
  // Calls `changed` on `io` once a burst of changes to `path` has settled (200 ms without
  // another): the file written and closed, or replaced by a rename (editors, the tests, the
  // ConfigMap's `..data` link swap). Throws std::runtime_error when the directory cannot be watched.
  config_watch(boost::asio::io_context& io, const std::string& path, std::function<void()> changed);
  ~config_watch();  // stops watching; call on `io`'s thread or after it stopped

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace pgmux::app
