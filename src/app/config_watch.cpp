// inotify on the config file's directory, read through the event loop.
#include "pgmux/app/config_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pgmux/log.hpp"

namespace pgmux::app {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Writers touch a file several times in a row (truncate, write, close; or write aside, rename):
// one reload once they are done.
constexpr auto settle = 200ms;

}  // namespace

struct config_watch::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io, std::function<void()> on_change) : descriptor(io), timer(io), changed(std::move(on_change)) {}

  asio::posix::stream_descriptor descriptor;
  asio::steady_timer timer;
  std::function<void()> changed;
  std::string file;      // the name within the directory
  std::string resolved;  // the name of the file it links to, in that file's directory, if it is a link
  alignas(inotify_event) std::array<char, 4096> events{};
  bool stopped = false;

  void read() {
    descriptor.async_read_some(asio::buffer(events), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (self->stopped || ec == asio::error::operation_aborted) return;
      if (ec) {
        log::error("watch_config: reading inotify events failed (" + ec.message() +
                   "): the config file is no longer watched; SIGHUP still reloads it");
        return;
      }
      if (self->concerns_file(n)) self->schedule();
      self->read();
    });
  }

  bool concerns_file(std::size_t n) const {
    bool ours = false;
    for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
      inotify_event e;
      std::memcpy(&e, events.data() + at, sizeof e);
      const std::string_view name(events.data() + at + sizeof e, e.len ? std::strlen(events.data() + at + sizeof e) : 0);
      // Kubernetes swaps the `..data` link to a new directory that holds every file of the map.
      if (name == file || (!resolved.empty() && name == resolved) || name == "..data" || (e.mask & IN_Q_OVERFLOW))
        ours = true;
      at += sizeof e + e.len;
    }
    return ours;
  }

  void schedule() {
    timer.expires_after(settle);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->stopped) self->changed();
    });
  }
};

config_watch::config_watch(asio::io_context& io, const std::string& path, std::function<void()> changed)
    : impl_(std::make_shared<impl>(io, std::move(changed))) {
  const auto split = [](const std::string& p) {
    const auto slash = p.rfind('/');
    return std::pair<std::string, std::string>{slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash)),
                                               slash == std::string::npos ? p : p.substr(slash + 1)};
  };
  const auto [directory, file] = split(path);
  impl_->file = file;
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  impl_->descriptor.assign(fd);
  constexpr std::uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE;
  if (::inotify_add_watch(fd, directory.c_str(), mask) < 0)
    throw std::runtime_error("cannot watch " + directory + ": " + std::strerror(errno));
  // A link to a file elsewhere (not a ConfigMap's, whose ..data swap shows in the first
  // directory): edits of its target happen in the target's directory.
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    const auto [real_directory, real_file] = split(real);
    std::free(real);
    if (real_directory != directory) {
      impl_->resolved = real_file;
      if (::inotify_add_watch(fd, real_directory.c_str(), mask) < 0)
        throw std::runtime_error("cannot watch " + real_directory + ": " + std::strerror(errno));
    }
  }
  impl_->read();
}

config_watch::~config_watch() {
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->timer.cancel();
  impl_->descriptor.close(ignored);
}

}  // namespace pgmux::app
