#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
