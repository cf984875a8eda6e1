// A fixed-size, zero-filled array in anonymous memory, advised to the kernel for transparent
// huge pages (madvise MADV_HUGEPAGE). Big random-access tables, such as the flow table, then
// take one TLB entry per 2 MiB instead of per 4 KiB. Where the kernel gives none (THP set to
// "never"), the array still works on small pages.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <type_traits>

namespace sluice {

template <typename T>
class HugePageArray {
  static_assert(std::is_trivially_destructible_v<T>, "elements are never destroyed one by one");

 public:
  HugePageArray() = default;
  explicit HugePageArray(size_t size) : size_(size) {
    if (size == 0) return;
    bytes_ = (size * sizeof(T) + kHugePage - 1) / kHugePage * kHugePage;
    void* memory = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    madvise(memory, bytes_, MADV_HUGEPAGE);  // a hint: failure leaves small pages
    data_ = static_cast<T*>(memory);
    for (size_t i = 0; i < size; ++i) new (&data_[i]) T();
  }
  ~HugePageArray() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  HugePageArray(const HugePageArray&) = delete;
  HugePageArray& operator=(const HugePageArray&) = delete;
  HugePageArray(HugePageArray&& other) noexcept { swap(other); }
  HugePageArray& operator=(HugePageArray&& other) noexcept {
    swap(other);
    return *this;
  }

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20;

  void swap(HugePageArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(bytes_, other.bytes_);
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

}  // namespace sluice
