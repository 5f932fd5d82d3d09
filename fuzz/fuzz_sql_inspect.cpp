// The SQL lexer of transaction pooling (sql_inspect.hpp): LISTEN / UNLISTEN, and statements
// that reach pgmux's own prepared statements, in any SQL a client sends.
// Input: SQL text.
#include "fuzz_support.hpp"
#include "pgmux/protocol/sql_inspect.hpp"

using namespace pgmux::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  const auto found = inspect_sql(sql);
  // The prefilter only skips texts the lexer finds nothing in.
  if (!sql_may_matter(sql)) {
    const auto full = inspect_sql_unfiltered(sql);
    FUZZ_CHECK(full.listen.empty() && !full.reserved_statement_name && !full.statement_commands_elsewhere &&
               full.state == session_state::none && full.carried.empty() && full.resets.empty());
  }
  for (const auto& change : found.listen) {
    // A channel is a name from the text: never longer than the text itself (quotes unescape).
    FUZZ_CHECK(change.channel.size() <= sql.size());
    FUZZ_CHECK(change.what == listen_change::kind::unlisten_all || !change.channel.empty());
  }
  sql_watch watch;
  watch.note(found);
  FUZZ_CHECK(watch.listening.size() <= listen_set::max_channels);
  FUZZ_CHECK(watch.statements_untrusted == found.statement_commands_elsewhere);
  // The refusal pgmux sends in place of such SQL must itself pass.
  static const bool refusal_clean = !inspect_sql(reserved_statement_refusal_sql()).reserved_statement_name;
  FUZZ_CHECK(refusal_clean);
  return 0;
}
