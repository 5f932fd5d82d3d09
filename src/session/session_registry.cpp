// The registry of live client sessions, instantiated where a session is a complete type.
#include "pgmux/session/session_registry.hpp"

#include "pgmux/session/client_session.hpp"

template class pgmux::intrusive_registry<pgmux::net::client_session>;
