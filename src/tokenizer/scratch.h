// Per-thread scratch buffers for the encode path, one per nesting level: a Sequence of
// normalizers or pre-tokenizers can hold one while the next stage takes another. Encoding then
// allocates nothing once the buffers are warm.
#pragma once

#include <memory>
#include <vector>

namespace tuneserve::tok {

template <typename T>
class Scratch {
 public:
  Scratch() {
    auto& p = pool();
    if (p.depth == p.items.size()) p.items.push_back(std::make_unique<T>());
    item_ = p.items[p.depth++].get();
    item_->clear();
  }
  ~Scratch() { --pool().depth; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T& operator*() { return *item_; }
  T* operator->() { return item_; }

 private:
  struct Pool {
    std::vector<std::unique_ptr<T>> items;
    std::size_t depth = 0;
  };
  static Pool& pool() {
    thread_local Pool p;
    return p;
  }
  T* item_;
};

}  // namespace tuneserve::tok
