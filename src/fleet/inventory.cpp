// Device discovery: runs the vendor tools (or the injected runner), parses their output and maps each
// device to a catalogue id.
#include "fleet/inventory.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "fleet/catalogue.h"
#include "fleet/inventory_text.h"

extern char** environ;

namespace mixserve::fleet {
namespace {

constexpr int kToolTimeoutMs = 10000;
constexpr size_t kMaxToolOutput = 4u << 20;  // vendor tools print kilobytes; more is a broken tool

std::optional<std::string> find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
  }
  const char* path = std::getenv("PATH");
  for (auto dir : text::split(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = std::string(dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

DiscoveredDevice problem_entry(const std::string& source, const std::string& vendor, const std::string& problem) {
  DiscoveredDevice d;
  d.source = source;
  d.vendor = vendor;
  d.index = -1;
  d.status = problem;
  return d;
}

// Runs one vendor tool and parses its output; appends devices (or one entry naming the problem).
void probe_tool(const DiscoveryEnv& env, const std::vector<std::string>& argv, const std::string& vendor,
                ParseResult (*parse)(std::string_view), std::vector<DiscoveredDevice>& out) {
  const std::string& tool = argv.front();
  const auto output = env.run_tool(argv);
  if (!output) {
    log_debug("inventory: ", tool, " not found on PATH; skipping ", vendor, " devices");
    return;
  }
  ParseResult parsed = parse(output->output);
  if (output->exit_code != 0 && parsed.devices.empty() && parsed.error.empty()) {
    parsed.error = tool + " exited with status " + std::to_string(output->exit_code) + ": " +
                   text::first_line(output->output);
  }
  for (auto& d : parsed.devices) out.push_back(std::move(d));
  if (!parsed.error.empty()) {
    log_warn("inventory: ", parsed.error);
    out.push_back(problem_entry(tool, vendor, parsed.error));
  }
}

}  // namespace

std::optional<ToolOutput> run_tool_with_timeout(const std::vector<std::string>& argv, int timeout_ms) {
  if (argv.empty()) return std::nullopt;
  const auto exe = find_on_path(argv[0]);
  if (!exe) return std::nullopt;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ToolOutput{-1, "cannot create a pipe"};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe->c_str(), &actions, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return ToolOutput{-1, "cannot start " + *exe};
  }
  ToolOutput result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  char buf[8192];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // timeout: the loop re-checks the deadline
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.output.size() < kMaxToolOutput) result.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    result.exit_code = -1;
    result.output += "\n" + argv[0] + " timed out after " + std::to_string(timeout_ms) + " ms";
  } else {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return result;
}

DiscoveryEnv system_discovery_env() {
  DiscoveryEnv env;
  env.run_tool = [](const std::vector<std::string>& argv) { return run_tool_with_timeout(argv, kToolTimeoutMs); };
  env.read_file = read_whole_file;
  env.use_nvml = true;
  return env;
}

void assign_chip_ids(const Catalogue& catalogue, std::vector<DiscoveredDevice>& devices) {
  for (auto& d : devices) {
    const bool is_cpu = d.source == "/proc/cpuinfo";
    std::optional<std::string> id;
    if (!d.name.empty()) {
      // A CPU only takes a CPU entry and an accelerator only a non-CPU one, so a loose name pattern
      // cannot turn a host CPU into an accelerator or the reverse.
      if (auto m = catalogue.match(d.vendor, d.name)) {
        const auto spec = catalogue.find(*m);
        if (spec && (spec->stack == "cpu") == is_cpu) id = m;
      }
    }
    if (!id && d.chip_id && catalogue.find(*d.chip_id)) id = d.chip_id;  // generic cpu-x86 / cpu-arm
    d.chip_id = id;
  }
}

std::vector<DiscoveredDevice> discover_devices(const Catalogue& catalogue, const DiscoveryEnv& env) {
  std::vector<DiscoveredDevice> devices;
  if (const auto cpuinfo = env.read_file("/proc/cpuinfo")) {
    ParseResult cpu = parse_cpuinfo(*cpuinfo);
    if (!cpu.error.empty()) devices.push_back(problem_entry("/proc/cpuinfo", "", cpu.error));
    for (auto& d : cpu.devices) {
      if (const auto meminfo = env.read_file("/proc/meminfo")) d.memory_bytes = parse_meminfo_total(*meminfo);
      devices.push_back(std::move(d));
    }
  } else {
    log_debug("inventory: /proc/cpuinfo not readable; no CPU entry");
  }

  std::optional<std::vector<DiscoveredDevice>> nvml;
  if (env.use_nvml) nvml = discover_nvml();
  if (nvml) {
    for (auto& d : *nvml) devices.push_back(std::move(d));
  } else {
    probe_tool(env,
               {"nvidia-smi", "--query-gpu=index,name,uuid,memory.total,pci.bus_id", "--format=csv,noheader,nounits"},
               "NVIDIA", parse_nvidia_smi_csv, devices);
  }
  probe_tool(env, {"npu-smi", "info"}, "Huawei", parse_npu_smi_info, devices);
  probe_tool(env, {"cnmon"}, "Cambricon", parse_cnmon, devices);
  probe_tool(env, {"hy-smi", "--showproductname", "--showmeminfo", "vram"}, "Hygon", parse_hy_smi, devices);
  assign_chip_ids(catalogue, devices);
  for (const auto& d : devices) {
    if (!d.chip_id && d.index >= 0) {
      log_info("inventory: ", d.source, " device ", d.index, " '", d.name, "' is not in the chip catalogue");
    }
  }
  return devices;
}

}  // namespace mixserve::fleet
