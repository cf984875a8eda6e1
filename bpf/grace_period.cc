#include "grace_period.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace sluice::bpf {

Result<GracePeriod> GracePeriod::create() {
  const int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sl_gp_inner", sizeof(uint32_t),
                                   sizeof(uint32_t), 1, nullptr);
  if (inner < 0) {
    return Error{std::string("creating the grace period's inner map failed: ") + std::strerror(-inner) +
                 " (BPF maps need root: CAP_BPF)"};
  }
  bpf_map_create_opts options{};
  options.sz = sizeof(options);
  options.inner_map_fd = inner;
  const int outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "sl_gp_outer", sizeof(uint32_t),
                                   sizeof(uint32_t), 1, &options);
  if (outer < 0) {
    close(inner);
    return Error{std::string("creating the grace period's map-in-map failed: ") + std::strerror(-outer)};
  }
  return GracePeriod(outer, inner);
}

GracePeriod::GracePeriod(GracePeriod&& other) noexcept
    : outer_fd_(other.outer_fd_), inner_fd_(other.inner_fd_) {
  other.outer_fd_ = -1;
  other.inner_fd_ = -1;
}

GracePeriod::~GracePeriod() {
  if (outer_fd_ >= 0) close(outer_fd_);
  if (inner_fd_ >= 0) close(inner_fd_);
}

Status GracePeriod::wait() {
  const uint32_t key = 0;
  if (int err = bpf_map_update_elem(outer_fd_, &key, &inner_fd_, BPF_ANY); err < 0) {
    return Error{std::string("waiting for running BPF programs failed: updating the map-in-map: ") +
                 std::strerror(-err)};
  }
  return {};
}

}  // namespace sluice::bpf
