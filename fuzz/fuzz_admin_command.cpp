// The admin console's command parser: any simple Query a client of database "pgmux" sends.
// Input: the SQL text.
#include "fuzz_support.hpp"
#include "pgmux/protocol/admin_command.hpp"

using namespace pgmux::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  const auto normalized = normalize_admin_command(sql);
  FUZZ_CHECK(normalized.size() <= sql.size());
  FUZZ_CHECK(normalized.empty() || (normalized.front() != ' ' && normalized.back() != ' '));
  FUZZ_CHECK(normalized.find(';') == std::string::npos);
  // Normalizing is idempotent, and the command is the normalized text's.
  FUZZ_CHECK(normalize_admin_command(normalized) == normalized);
  const auto cmd = parse_admin_command(sql);
  FUZZ_CHECK(parse_admin_command(normalized).verb == cmd.verb);
  FUZZ_CHECK(cmd.database.size() <= sql.size());
  FUZZ_CHECK((cmd.verb == admin_verb::empty) == normalized.empty());
  if (cmd.verb != admin_verb::pause && cmd.verb != admin_verb::resume) FUZZ_CHECK(cmd.database.empty());
  FUZZ_CHECK(cmd.database.find(';') == std::string::npos);
  return 0;
}
