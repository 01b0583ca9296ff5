#include "tests/support/tcp_relay.hpp"

#include "tests/support/child_process.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace registry::test {

namespace {

// Writes all of `data`; false when the peer is gone.
bool
send_all(int fd, const char* data, size_t size)
{
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

} // namespace

TcpRelay::TcpRelay(int target_port)
  : m_target_port(target_port)
{
  listen_on(0);
}

TcpRelay::~TcpRelay()
{
  cut();
}

void
TcpRelay::listen_on(int port)
{
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto addr = loopback_address(port);
  REQUIRE_MESSAGE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
                  "relay cannot bind 127.0.0.1:", port, ": ", std::strerror(errno));
  REQUIRE(::listen(fd, 64) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  m_port = ntohs(addr.sin_port);
  m_listener = fd;
  m_stopping = false;
  m_acceptor = std::thread([this, fd] { accept_loop(fd); });
}

void
TcpRelay::accept_loop(int listener)
{
  while (!m_stopping) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    int client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      continue;
    }
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto addr = loopback_address(m_target_port);
    if (upstream < 0 || ::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(client);
      if (upstream >= 0) {
        ::close(upstream);
      }
      continue;
    }
    ++m_accepted;
    std::lock_guard lock(m_mutex);
    m_open.insert(client);
    m_open.insert(upstream);
    m_pumps.emplace_back([this, client, upstream] { pump(client, upstream); });
  }
}

void
TcpRelay::pump(int client, int upstream)
{
  std::vector<char> buffer(256 << 10);
  pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  bool open = true;
  while (open && !m_stopping) {
    if (::poll(fds, 2, 50) <= 0) {
      continue;
    }
    for (int i = 0; i < 2 && open; ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      ssize_t n = ::recv(fds[i].fd, buffer.data(), buffer.size(), 0);
      open = n > 0 && send_all(fds[1 - i].fd, buffer.data(), static_cast<size_t>(n));
    }
  }
  std::lock_guard lock(m_mutex);
  for (int fd : {client, upstream}) {
    if (m_open.erase(fd) != 0) {
      ::close(fd);
    }
  }
}

void
TcpRelay::cut()
{
  if (m_listener < 0) {
    return;
  }
  m_stopping = true;
  m_acceptor.join();
  ::close(m_listener);
  m_listener = -1;
  std::vector<std::thread> pumps;
  {
    std::lock_guard lock(m_mutex);
    // Resets rather than a clean close: the peer sees the connection break.
    for (int fd : m_open) {
      linger reset{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ::shutdown(fd, SHUT_RDWR);
    }
    pumps.swap(m_pumps);
  }
  for (auto& t : pumps) {
    t.join();
  }
}

void
TcpRelay::restore()
{
  if (m_listener >= 0) {
    return;
  }
  listen_on(m_port);
}

} // namespace registry::test
