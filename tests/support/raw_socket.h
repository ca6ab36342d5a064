// A plain blocking TCP client socket for tests that must send malformed, partial or pipelined
// HTTP bytes — things a well-behaved client library never does.
#pragma once

#include <cstdint>
#include <string>

namespace mixserve::testing {

/// A connected loopback socket, closed on destruction.
class RawSocket {
 public:
  /// Connects to 127.0.0.1:port; receives time out after `timeout_s`. Fails the test on error.
  explicit RawSocket(uint16_t port, double timeout_s = 10);
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  /// Sends all bytes; false when the peer has closed.
  bool send(const std::string& bytes);
  /// Reads until the peer closes or the receive timeout passes; returns what arrived.
  std::string read_all();
  /// Reads until `marker` has arrived (or close/timeout); returns everything read so far.
  std::string read_until(const std::string& marker);
  /// Whether the peer closed the connection (a read returned 0) within the receive timeout.
  bool closed_by_peer();
  /// Closes the socket now.
  void close();

 private:
  int fd_ = -1;
  std::string pending_;
};

}  // namespace mixserve::testing
