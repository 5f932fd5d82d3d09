// Command line: pgmux --config FILE [--check] | pgmux passwd USER | --version | --help
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "pgmux/log.hpp"
#include "pgmux/app/server.hpp"
#include "pgmux/auth/scram_verifier.hpp"
#include "pgmux/config/load.hpp"
#include "pgmux/io/tls.hpp"
#include "pgmux/version.hpp"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: pgmux [--config FILE] [--check] [--verbose]\n"
               "       pgmux passwd USER\n"
               "       pgmux --version | --help\n"
               "\n"
               "A PostgreSQL connection pool proxy.\n"
               "\n"
               "  -c, --config FILE   config file (default: conf/pgmux.json)\n"
               "      --check         validate the config file and exit: 0 when valid, else 1\n"
               "                      with one line per error, naming its JSON path\n"
               "  -v, --verbose       log every client and server connection (debug level)\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          print this help and exit\n"
               "\n"
               "pgmux passwd USER reads a password from standard input (without echo on a\n"
               "terminal, else the first line) and prints USER's line for auth.users_file with\n"
               "its SCRAM-SHA-256 verifier, which ALTER ROLE ... PASSWORD also accepts.\n");
}

// One line from standard input without its line end. On a terminal, echo is off meanwhile.
bool read_password_line(const char* prompt, std::string& out) {
  termios saved{};
  const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    std::fputs(prompt, stderr);
    std::fflush(stderr);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  const bool got = static_cast<bool>(std::getline(std::cin, out));
  if (tty) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return got || !out.empty();
}

int passwd(const std::string& user) {
  if (user.empty()) {
    std::fprintf(stderr, "pgmux passwd: the user name must not be empty\n");
    return 2;
  }
  std::string password;
  if (!read_password_line("Password: ", password)) {
    std::fprintf(stderr, "pgmux passwd: no password on standard input\n");
    return 1;
  }
  if (::isatty(STDIN_FILENO)) {
    std::string again;
    if (!read_password_line("Again: ", again) || again != password) {
      std::fprintf(stderr, "pgmux passwd: the passwords differ\n");
      return 1;
    }
  }
  if (password.empty()) {
    std::fprintf(stderr, "pgmux passwd: empty password\n");
    return 1;
  }
  try {
    const nlohmann::json name = user, secret = pgmux::auth::make_scram_verifier(password);
    std::printf("%s: %s\n", name.dump().c_str(), secret.dump().c_str());
  } catch (const nlohmann::json::exception&) {
    std::fprintf(stderr, "pgmux passwd: the user name is not valid UTF-8\n");
    return 2;
  }
  return 0;
}

// Every client and server connection is a descriptor: take the hard limit, as the systemd unit
// would give, rather than a login shell's soft 1024, which a few hundred stalled clients exhaust.
void raise_open_file_limit() {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur >= l.rlim_max) return;
  l.rlim_cur = l.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &l);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "conf/pgmux.json";
  bool check_only = false;
  if (argc >= 2 && std::strcmp(argv[1], "passwd") == 0) {
    if (argc != 3) {
      std::fprintf(stderr, "Usage: pgmux passwd USER\n");
      return 2;
    }
    return passwd(argv[2]);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if (arg == "-V" || arg == "--version") {
      std::printf("pgmux %s\n", pgmux::version());
      return 0;
    }
    if (arg == "--check") {
      check_only = true;
    } else if (arg == "-v" || arg == "--verbose") {
      pgmux::log::force_debug();
    } else if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(std::strlen("--config="));
    } else {
      std::fprintf(stderr, "pgmux: unknown argument \"%s\"\n\n", arg.c_str());
      usage(stderr);
      return 2;
    }
  }

  auto loaded = pgmux::config::load_config_file(config_path);
  if (!loaded.cfg) {
    std::fprintf(stderr, "pgmux: invalid config %s:\n%s", config_path.c_str(),
                 pgmux::config::format_errors(loaded.errors).c_str());
    return 1;
  }
  if (pgmux::config::config_error tls_error; !pgmux::net::make_tls_contexts(*loaded.cfg, tls_error)) {
    std::fprintf(stderr, "pgmux: invalid config %s:\n%s", config_path.c_str(),
                 pgmux::config::format_errors({tls_error}).c_str());
    return 1;
  }
  if (check_only) {
    std::printf("%s: config OK\n", config_path.c_str());
    return 0;
  }
  raise_open_file_limit();
  return pgmux::app::serve(std::make_shared<const pgmux::config::config>(std::move(*loaded.cfg)), config_path);
}
