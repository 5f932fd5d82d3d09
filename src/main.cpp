// Command line: pgmux --config FILE [--check] | --version | --help
#include <cstdio>
#include <cstring>
#include <string>

#include "pgmux/app/log.hpp"
#include "pgmux/app/server.hpp"
#include "pgmux/config/load.hpp"
#include "pgmux/version.hpp"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: pgmux [--config FILE] [--check] [--verbose]\n"
               "       pgmux --version | --help\n"
               "\n"
               "A PostgreSQL connection pool proxy.\n"
               "\n"
               "  -c, --config FILE   config file (default: conf/pgmux.json)\n"
               "      --check         validate the config file and exit: 0 when valid, else 1\n"
               "                      with one line per error, naming its JSON path\n"
               "  -v, --verbose       log every client and server connection (debug level)\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          print this help and exit\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "conf/pgmux.json";
  bool check_only = false;
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
  if (check_only) {
    std::printf("%s: config OK\n", config_path.c_str());
    return 0;
  }
  return pgmux::app::serve(std::make_shared<const pgmux::config::config>(std::move(*loaded.cfg)), config_path);
}
