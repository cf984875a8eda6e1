#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <string>

#include "quote.h"
#include "sluice/health/probe.h"

namespace sluice::health {
namespace {

// How many bytes are read looking for the end of the status line before the response counts
// as malformed. Real status lines are far shorter.
constexpr size_t kMaxStatusLine = 1024;

std::string join(const std::set<int>& statuses) {
  std::string text;
  for (const int status : statuses) {
    if (!text.empty()) text += ", ";
    text += std::to_string(status);
  }
  return text;
}

}  // namespace

HttpProbe::HttpProbe(ProbeTarget target, HttpCheck check)
    : Probe(std::move(target)), check_(std::move(check)) {
  const std::string host = check_.host.empty()
                               ? format_endpoint(this->target().address, this->target().port)
                               : check_.host;
  request_ = "GET " + check_.path + " HTTP/1.1\r\nHost: " + host +
             "\r\nUser-Agent: sluice-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
}

int HttpProbe::socket_type() const { return SOCK_STREAM; }

void HttpProbe::on_connected() { send_request(); }

void HttpProbe::on_ready(short) {
  if (sent_ < request_.size()) {
    send_request();
  } else {
    read_status_line();
  }
}

std::string HttpProbe::waiting_for() const {
  return sent_ < request_.size() ? "the socket to accept the request" : "the HTTP status line";
}

void HttpProbe::send_request() {
  while (sent_ < request_.size()) {
    const ssize_t written =
        send(fd(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(POLLOUT);
        return;
      }
      if (errno == EINTR) continue;
      fail_errno("send", errno);
      return;
    }
    sent_ += static_cast<size_t>(written);
  }
  wait_for(POLLIN);
}

void HttpProbe::read_status_line() {
  char buffer[512];
  while (true) {
    const ssize_t count = recv(fd(), buffer, sizeof(buffer), 0);
    if (count < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      fail_errno("recv", errno);
      return;
    }
    if (count == 0) {
      fail(endpoint() + (received_.empty()
                             ? ": the server closed the connection without a response"
                             : ": the response ended inside the status line " + quote(received_)));
      return;
    }
    received_.append(buffer, static_cast<size_t>(count));

    const size_t end = received_.find('\n');
    if (end != std::string::npos) {
      // RFC 9112 section 2.2 lets a recipient accept a bare LF as the line end.
      std::string_view line(received_.data(), end);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      check_status_line(line);
      return;
    }
    if (received_.size() > kMaxStatusLine) {
      fail(endpoint() + ": malformed HTTP response: no status line in the first " +
           std::to_string(kMaxStatusLine) + " bytes " + quote(received_));
      return;
    }
  }
}

void HttpProbe::check_status_line(std::string_view line) {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4), with
  // HTTP-version = "HTTP/" DIGIT "." DIGIT and status-code = 3DIGIT. The SP after the code may be
  // missing, because that section lets a recipient ignore trailing whitespace.
  const auto digit = [&](size_t i) { return std::isdigit(static_cast<unsigned char>(line[i])); };
  const bool well_formed = line.size() >= 12 && line.substr(0, 5) == "HTTP/" && digit(5) &&
                           line[6] == '.' && digit(7) && line[8] == ' ' && digit(9) && digit(10) &&
                           digit(11) && (line.size() == 12 || line[12] == ' ');
  if (!well_formed) {
    fail(endpoint() + ": malformed HTTP status line " + quote(line));
    return;
  }

  const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (check_.expected_statuses.contains(status)) {
    pass();
    return;
  }
  std::string reason(line.size() > 13 ? line.substr(13) : std::string_view());
  fail(endpoint() + ": HTTP status " + std::to_string(status) +
       (reason.empty() ? "" : " " + quote(reason)) + " for " + check_.path + ", expected " +
       join(check_.expected_statuses));
}

}  // namespace sluice::health
