#pragma once

// A TCP relay on 127.0.0.1 in front of another loopback server, for tests where
// that server must become unreachable in the middle of a conversation: cut()
// stops accepting and breaks every relayed connection, so clients see refused
// connections; restore() listens on the same port again.

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace registry::test {

class TcpRelay
{
public:
  // Relays to `target_port` on 127.0.0.1. Fails the test if it cannot listen.
  explicit TcpRelay(int target_port);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  int
  port() const
  {
    return m_port;
  }
  // Stops listening and closes every relayed connection. Idempotent.
  void cut();
  // Listens on port() again. Fails the test if the port was taken meanwhile.
  void restore();
  // Connections accepted so far.
  int
  accepted() const
  {
    return m_accepted.load();
  }

private:
  void listen_on(int port);
  void accept_loop(int listener);
  void pump(int client, int upstream);

  int m_target_port;
  int m_port = 0;
  int m_listener = -1;
  std::atomic<bool> m_stopping{false};
  std::atomic<int> m_accepted{0};
  std::thread m_acceptor;
  std::mutex m_mutex;
  std::set<int> m_open; // relayed sockets, both sides
  std::vector<std::thread> m_pumps;
};

} // namespace registry::test
