// Waits until the BPF programs that are running have finished, so that map values they read
// before a change are no longer in use.
#pragma once

#include "sluice/result.h"

namespace sluice::bpf {

class GracePeriod {
 public:
  // Creates the one-entry map-in-map that wait() updates. Needs CAP_BPF.
  static Result<GracePeriod> create();
  ~GracePeriod();

  GracePeriod(GracePeriod&& other) noexcept;
  GracePeriod& operator=(GracePeriod&&) = delete;
  GracePeriod(const GracePeriod&) = delete;
  GracePeriod& operator=(const GracePeriod&) = delete;

  // Returns once every BPF program that was running when it was called has returned. Non-
  // sleepable programs, XDP among them, run inside an RCU read-side critical section, and the
  // kernel waits for an RCU grace period after each successful update of a map-in-map
  // (maybe_wait_bpf_programs() in kernel/bpf/syscall.c, from commit 1ae80cf31938 "bpf: wait
  // for running BPF programs when updating map-in-map"). tests/bpf/grace_period_test.cc
  // checks this on the running kernel. Each call takes one grace period, about 10 ms on the
  // 2-CPU VM where the config churn test runs.
  Status wait();

 private:
  GracePeriod(int outer_fd, int inner_fd) : outer_fd_(outer_fd), inner_fd_(inner_fd) {}

  int outer_fd_ = -1;  // BPF_MAP_TYPE_ARRAY_OF_MAPS with one entry
  int inner_fd_ = -1;  // the array that wait() stores in it
};

}  // namespace sluice::bpf
