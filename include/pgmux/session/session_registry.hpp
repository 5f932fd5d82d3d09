// The live client sessions, so that shutdown, the admin console and the metrics can reach them.
#pragma once
#include "pgmux/intrusive_registry.hpp"

namespace pgmux::net {

class client_session;

class session_registry : public intrusive_registry<client_session> {};

}  // namespace pgmux::net

// Instantiated once, in session_registry.cpp, where a session is a complete type.
extern template class pgmux::intrusive_registry<pgmux::net::client_session>;
