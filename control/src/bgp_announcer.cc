#include "sluice/control/bgp_announcer.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace sluice::control {
namespace {

constexpr auto kCommandTimeout = std::chrono::seconds(5);
constexpr auto kStartWait = std::chrono::seconds(10);
constexpr auto kStopWait = std::chrono::seconds(5);
constexpr auto kRestartInterval = std::chrono::seconds(5);

// BIRD's protocol names; the BGP channels export exactly the routes of these.
constexpr const char* kStaticIpv4 = "sluice_vips_ipv4";
constexpr const char* kStaticIpv6 = "sluice_vips_ipv6";

std::string errno_text() { return std::strerror(errno); }

// A reply line of BIRD's control socket: "DDDD text" ends a reply, "DDDD-text" and
// " text" continue it (the lines that birdc reads).
bool is_final_line(const std::string& line) {
  return line.size() >= 5 && std::all_of(line.begin(), line.begin() + 4, ::isdigit) &&
         line[4] == ' ';
}

// Reads lines from `fd` until a final line; returns the lines and sets `code` to its code.
Result<std::string> read_reply(int fd, std::string& pending, std::string& code) {
  std::string reply;
  for (;;) {
    const size_t newline = pending.find('\n');
    if (newline != std::string::npos) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      reply += line + "\n";
      if (is_final_line(line)) {
        code = line.substr(0, 4);
        return reply;
      }
      continue;
    }
    char buffer[4096];
    const ssize_t received = ::recv(fd, buffer, sizeof(buffer), 0);
    if (received == 0) return Error{"BIRD closed the control socket in mid-reply"};
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Error{"BIRD did not reply in time"};
      return Error{"reading BIRD's control socket failed: " + errno_text()};
    }
    pending.append(buffer, static_cast<size_t>(received));
  }
}

std::string prefix_of(const IpAddress& address) {
  return address.to_string() + (address.is_v4() ? "/32" : "/128");
}

void append_static(std::string& text, const char* name, const char* channel, int family,
                   const std::set<IpAddress>& addresses) {
  text += std::string("protocol static ") + name + " {\n  " + channel + ";\n";
  for (const IpAddress& address : addresses) {
    if (address.family != family) continue;
    // The route only carries the prefix to BGP: no kernel protocol takes it into a table here.
    text += "  route " + prefix_of(address) + " blackhole;\n";
  }
  text += "}\n";
}

}  // namespace

std::set<IpAddress> serving_vip_addresses(const std::vector<VipStatus>& vips) {
  std::set<IpAddress> addresses;
  for (const VipStatus& vip : vips) {
    if (vip.all_backends_down) continue;
    const bool live = std::any_of(vip.backends.begin(), vip.backends.end(),
                                  [](const BackendStatus& backend) { return backend.state == "live"; });
    if (live) addresses.insert(vip.key.address);
  }
  return addresses;
}

std::string render_bird_config(const BgpConfig& bgp, const std::set<IpAddress>& addresses) {
  std::string text = "# Written by sluiced at start and whenever its announced VIPs change.\n";
  text += bgp.bird.log_file.empty() ? "log stderr all;\n" : "log \"" + bgp.bird.log_file + "\" all;\n";
  text += "router id " + bgp.router_id.to_string() + ";\n";
  text += "protocol device {\n}\n";
  const bool ipv6 = bgp.next_hop_ipv6.is_set();
  append_static(text, kStaticIpv4, "ipv4", 4, addresses);
  if (ipv6) append_static(text, kStaticIpv6, "ipv6", 6, addresses);

  const uint32_t keepalive = std::max<uint32_t>(1, bgp.hold_time_s / 3);
  for (size_t i = 0; i < bgp.peers.size(); ++i) {
    const BgpPeerConfig& peer = bgp.peers[i];
    text += "protocol bgp sluice_peer_" + std::to_string(i) + " {\n";
    text += "  local " + (peer.local_address ? peer.local_address->to_string() + " " : std::string()) +
            "as " + std::to_string(bgp.local_as) + ";\n";
    text += "  neighbor " + peer.address.to_string() + " as " + std::to_string(peer.as) + ";\n";
    text += "  hold time " + std::to_string(bgp.hold_time_s) + ";\n";
    text += "  keepalive time " + std::to_string(keepalive) + ";\n";
    // The first connection after a start goes out within a second rather than BIRD's
    // default 5, and a lost one is tried again every 5 seconds rather than 120.
    text += "  connect delay time 1;\n  connect retry time 5;\n  error wait time 1, 10;\n";
    // A peer that kept this load balancer's routes after a lost session would send it
    // traffic that it cannot serve, so graceful restart (RFC 4724) is off.
    text += "  graceful restart off;\n";
    text += "  ipv4 {\n    import none;\n    export where proto = \"" + std::string(kStaticIpv4) +
            "\";\n    next hop address " + bgp.next_hop_ipv4.to_string() + ";\n  };\n";
    if (ipv6) {
      text += "  ipv6 {\n    import none;\n    export where proto = \"" + std::string(kStaticIpv6) +
              "\";\n    next hop address " + bgp.next_hop_ipv6.to_string() + ";\n  };\n";
    }
    text += "}\n";
  }
  return text;
}

Result<std::string> bird_command(const std::string& socket_path, const std::string& command,
                                 std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{"socket() for BIRD's control socket failed: " + errno_text()};
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  timeval limit{static_cast<time_t>(timeout.count() / 1000),
                static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) {
    return Error{"BIRD control socket path " + socket_path + " is too long"};
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return Error{"connecting to BIRD's control socket " + socket_path + " failed: " + errno_text()};
  }

  std::string pending;
  std::string code;
  auto greeting = read_reply(fd, pending, code);  // "0001 BIRD 2.0.12 ready."
  if (!greeting) return greeting;
  const std::string line = command + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return Error{"sending '" + command + "' to BIRD failed: " + errno_text()};
  }
  auto reply = read_reply(fd, pending, code);
  if (!reply) return reply;
  if (code[0] != '0') return Error{"BIRD rejected '" + command + "': " + *reply};
  return reply;
}

BgpAnnouncer::BgpAnnouncer(BgpConfig config) : config_(std::move(config)) {}

BgpAnnouncer::~BgpAnnouncer() { stop(); }

Status BgpAnnouncer::write_config(const std::set<IpAddress>& addresses) const {
  const std::string& path = config_.bird.config_file;
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    if (!file) return Error{"cannot write BIRD config " + temporary + ": " + errno_text()};
    file << render_bird_config(config_, addresses);
    if (!file.flush()) return Error{"cannot write BIRD config " + temporary + ": " + errno_text()};
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return Error{"cannot rename " + temporary + " to " + path + ": " + errno_text()};
  }
  return {};
}

Status BgpAnnouncer::start() {
  std::error_code ignored;
  for (const std::string& file : {config_.bird.config_file, config_.bird.control_socket}) {
    std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ignored);
  }
  if (Status status = write_config({}); !status) return status;
  return spawn();
}

Status BgpAnnouncer::spawn() {
  // Everything the child needs is built before fork(): between fork() and exec() in a process
  // with threads, only async-signal-safe calls are allowed.
  std::vector<std::string> arguments{config_.bird.binary, "-f", "-c", config_.bird.config_file,
                                     "-s", config_.bird.control_socket};
  if (!config_.bird.pid_file.empty()) {
    arguments.insert(arguments.end(), {"-P", config_.bird.pid_file});
  }
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  if (::access(config_.bird.binary.c_str(), X_OK) != 0) {
    return Error{"bgp.bird.binary " + config_.bird.binary + " is not an executable (" +
                 errno_text() + "); install BIRD 2 (Debian package bird2)"};
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Error{"fork() for BIRD failed: " + errno_text()};
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // sluiced died before prctl took effect
    // sluiced blocks the signals that it takes with sigtimedwait; BIRD needs them.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::close_range(3, ~0U, 0);  // the API socket, the BPF maps, the TAP
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  {
    std::lock_guard lock(mutex_);
    pid_ = pid;
  }
  last_spawn_ = std::chrono::steady_clock::now();
  spdlog::info("bgp: started BIRD (PID {}) with {}, control socket {}", pid,
               config_.bird.config_file, config_.bird.control_socket);
  return wait_for_socket();
}

Status BgpAnnouncer::wait_for_socket() {
  const auto deadline = std::chrono::steady_clock::now() + kStartWait;
  std::string last_error;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t pid = pid_;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      std::lock_guard lock(mutex_);
      pid_ = -1;
      return Error{"BIRD (PID " + std::to_string(pid) + ") exited during start-up with status " +
                   std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
                   "; its messages are in " +
                   (config_.bird.log_file.empty() ? "sluiced's log" : config_.bird.log_file)};
    }
    auto reply = bird_command(config_.bird.control_socket, "show status",
                              std::chrono::milliseconds(500));
    if (reply) return {};
    last_error = reply.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Error{"BIRD's control socket did not respond within 10 s: " + last_error};
}

Status BgpAnnouncer::announce(const std::set<IpAddress>& addresses) {
  if (addresses == announced_) return {};
  if (Status status = write_config(addresses); !status) return status;
  auto reply = bird_command(config_.bird.control_socket,
                            "configure \"" + config_.bird.config_file + "\"",
                            std::chrono::duration_cast<std::chrono::milliseconds>(kCommandTimeout));
  if (!reply) return Error{reply.error()};

  std::string added;
  std::string withdrawn;
  for (const IpAddress& address : addresses) {
    if (!announced_.contains(address)) added += " " + prefix_of(address);
  }
  for (const IpAddress& address : announced_) {
    if (!addresses.contains(address)) withdrawn += " " + prefix_of(address);
  }
  std::string now;
  for (const IpAddress& address : addresses) now += " " + prefix_of(address);
  spdlog::info("bgp: announcing {} (added:{}; withdrawn:{})", now.empty() ? "nothing" : now.substr(1),
               added.empty() ? " none" : added, withdrawn.empty() ? " none" : withdrawn);
  std::lock_guard lock(mutex_);
  announced_ = addresses;
  return {};
}

void BgpAnnouncer::restart_if_exited() {
  pid_t pid;
  {
    std::lock_guard lock(mutex_);
    pid = pid_;
  }
  if (pid > 0) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) != pid) return;
    spdlog::error("bgp: BIRD (PID {}) exited with status {}; starting it again", pid,
                  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    std::lock_guard lock(mutex_);
    pid_ = -1;
  }
  if (std::chrono::steady_clock::now() - last_spawn_ < kRestartInterval) return;
  if (Status status = spawn(); !status) spdlog::error("bgp: starting BIRD again failed: {}", status.error());
}

void BgpAnnouncer::stop() {
  pid_t pid;
  {
    std::lock_guard lock(mutex_);
    pid = pid_;
    pid_ = -1;
    announced_.clear();
  }
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopWait;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("bgp: BIRD (PID {}) still runs 5 s after SIGTERM; sending SIGKILL", pid);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::info("bgp: stopped BIRD (PID {})", pid);
}

nlohmann::json BgpAnnouncer::status() const {
  std::lock_guard lock(mutex_);
  nlohmann::json announced = nlohmann::json::array();
  for (const IpAddress& address : announced_) announced.push_back(prefix_of(address));
  return {{"announced", announced}, {"bird_pid", pid_}};
}

}  // namespace sluice::control
