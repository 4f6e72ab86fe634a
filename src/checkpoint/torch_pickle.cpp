// The restricted unpickler and the two PyTorch checkpoint layouts (see torch_pickle.h). Written by
// hand because no C++ library reads pickles without being able to run them: this machine only
// builds values (numbers, strings, tuples, lists, dicts, storages, tensors) and calls nothing.
#include "checkpoint/torch_pickle.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <variant>

#include "core/error.h"
#include "core/mapped_file.h"

namespace tuneserve {
namespace {

constexpr std::size_t kMaxDepth = 1000;            // MARK nesting
constexpr std::size_t kMaxPickleBytes = 256u << 20;  // data.pkl: structure only, never weights

// ---------------------------------------------------------------- values

struct Value;
using Ref = std::shared_ptr<Value>;

// Bytes of one storage: filled from the zip entry or the legacy file's tail.
struct StorageData {
  DType dtype = DType::F32;
  std::string key;
  std::uint64_t numel = 0;             // elements the persistent id announced
  const std::uint8_t* bytes = nullptr;  // set once read; numel * dtype_size bytes
  std::vector<std::uint8_t> owned;
  std::shared_ptr<StorageData> root;   // legacy views: elements [view_offset, +numel) of root
  std::uint64_t view_offset = 0;
};

struct TensorDesc {
  std::shared_ptr<StorageData> storage;
  DType dtype = DType::F32;
  std::int64_t offset = 0;
  std::vector<std::int64_t> shape, stride;
};

struct Value {
  enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, Opaque };
  Kind kind = Kind::None;
  std::int64_t i = 0;
  double f = 0;
  std::string s;                 // Str, Bytes, BigInt (little-endian two's complement), Global "module.name"
  std::vector<Ref> items;        // Tuple, List; Dict: key, value, key, value ...
  std::shared_ptr<StorageData> storage;
  std::shared_ptr<TensorDesc> tensor;  // Tensor (null data: an empty torch.Tensor awaiting BUILD)
};

Ref make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
Ref make_int(std::int64_t i) {
  Ref v = make(Value::Kind::Int);
  v->i = i;
  return v;
}
Ref make_str(Value::Kind k, std::string s) {
  Ref v = make(k);
  v->s = std::move(s);
  return v;
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::BigInt: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::Str: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "global";
    case Value::Kind::Storage: return "storage";
    case Value::Kind::Tensor: return "tensor";
    case Value::Kind::Opaque: return "object";
  }
  return "?";
}

// ---------------------------------------------------------------- the allow-list

// Storage classes -> dtype (torch.FloatStorage ...; torch.cuda.* are the same bytes).
const std::map<std::string, DType>& storage_types() {
  static const std::map<std::string, DType> m = [] {
    std::map<std::string, DType> out;
    const std::pair<const char*, DType> base[] = {
        {"FloatStorage", DType::F32}, {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
        {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
        {"ShortStorage", DType::I16}, {"CharStorage", DType::I8}, {"ByteStorage", DType::U8},
        {"BoolStorage", DType::BOOL}};
    for (const auto& [name, d] : base) {
      out[std::string("torch.") + name] = d;
      out[std::string("torch.cuda.") + name] = d;
    }
    return out;
  }();
  return m;
}

const std::map<std::string, DType>& dtype_globals() {
  static const std::map<std::string, DType> m = {
      {"torch.float32", DType::F32}, {"torch.float64", DType::F64}, {"torch.float16", DType::F16},
      {"torch.bfloat16", DType::BF16}, {"torch.int64", DType::I64}, {"torch.int32", DType::I32},
      {"torch.int16", DType::I16},   {"torch.int8", DType::I8},     {"torch.uint8", DType::U8},
      {"torch.bool", DType::BOOL}};
  return m;
}

// What torch.load(weights_only=True) allows beyond the above: accepted here, and those tuneserve has
// no use for (quantized, sparse, nested, complex tensors) refused with a precise reason when used.
const std::set<std::string>& other_allowed_globals() {
  static const std::set<std::string> s = [] {
    std::set<std::string> out = {
        "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode",
        "builtins.bytearray", "builtins.set", "builtins.complex", "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage", "torch._tensor._rebuild_from_type_v2", "torch.per_tensor_affine",
        "torch.per_tensor_symmetric", "torch.per_channel_affine", "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams"};
    for (const char* f : {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                          "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
                          "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
                          "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_device_tensor_from_numpy"})
      out.insert(std::string("torch._utils.") + f);
    for (const char* d : {"complex64", "complex128", "complex32", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
                          "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "uint16", "uint32",
                          "uint64"})
      out.insert(std::string("torch.") + d);
    for (const char* t : {"Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"}) {
      out.insert(std::string("torch.") + t + "Tensor");
      out.insert(std::string("torch.cuda.") + t + "Tensor");
    }
    for (const char* q : {"ComplexFloatStorage", "ComplexDoubleStorage", "QUInt8Storage", "QInt8Storage",
                          "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage"})
      out.insert(std::string("torch.") + q);
    return out;
  }();
  return s;
}

bool allowed_global(const std::string& name) {
  return storage_types().count(name) || dtype_globals().count(name) || other_allowed_globals().count(name);
}

// ---------------------------------------------------------------- the machine

// Resolves a persistent id to a Storage value (zip: by key; legacy: roots and views).
using PersistentLoad = std::function<Ref(const Ref& pid)>;

class Unpickler {
 public:
  Unpickler(const std::uint8_t* data, std::size_t size, std::string where, PersistentLoad load)
      : p_(data), end_(data + size), begin_(data), where_(std::move(where)), load_(std::move(load)) {}

  // One pickle, up to its STOP; `consumed()` says where the next begins.
  Ref run();
  std::size_t consumed() const { return static_cast<std::size_t>(p_ - begin_); }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail("{}: refused: {} (at byte {})", where_, why, static_cast<std::size_t>(op_at_ - begin_));
  }
  const std::uint8_t* take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) bad("truncated pickle");
    const std::uint8_t* at = p_;
    p_ += n;
    return at;
  }
  template <typename T>
  T le() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string line() {
    const std::uint8_t* nl = static_cast<const std::uint8_t*>(std::memchr(p_, '\n', std::min<std::size_t>(end_ - p_, 512)));
    if (!nl) bad("GLOBAL name not terminated");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  Ref pop() {
    if (stack_.empty()) bad("stack underflow");
    Ref v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top() {
    if (stack_.empty()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Ref tuple_of(std::vector<Ref> items) {
    Ref t = make(Value::Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  Ref call(const std::string& func, const Ref& args);
  Ref rebuild_tensor(const std::string& func, const std::vector<Ref>& a);
  std::int64_t int_arg(const Ref& v, const char* what) const {
    if (v->kind != Value::Kind::Int) bad(fmt::format("{} must be an int, got {}", what, kind_name(v->kind)));
    return v->i;
  }
  std::vector<std::int64_t> ints(const Ref& v, const char* what) const {
    if (v->kind != Value::Kind::Tuple && v->kind != Value::Kind::List)
      bad(fmt::format("{} must be a tuple of ints, got {}", what, kind_name(v->kind)));
    std::vector<std::int64_t> out;
    for (const Ref& x : v->items) out.push_back(int_arg(x, what));
    return out;
  }

  const std::uint8_t *p_, *end_, *begin_, *op_at_ = nullptr;
  std::string where_;
  PersistentLoad load_;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, Ref> memo_;
};

Ref Unpickler::rebuild_tensor(const std::string& func, const std::vector<Ref>& a) {
  // _rebuild_tensor(storage, offset, size, stride); _v2 adds requires_grad, hooks[, metadata];
  // _v3 adds requires_grad, hooks, dtype, metadata.
  const std::size_t min_args = func.ends_with("_v3") ? 7 : func.ends_with("_v2") ? 6 : 4;
  if (a.size() < min_args) bad(fmt::format("{} needs {} arguments, got {}", func, min_args, a.size()));
  if (a[0]->kind != Value::Kind::Storage) bad(fmt::format("{}: the first argument is a {}, not a storage", func, kind_name(a[0]->kind)));
  auto t = std::make_shared<TensorDesc>();
  t->storage = a[0]->storage;
  t->dtype = t->storage->dtype;
  t->offset = int_arg(a[1], "storage_offset");
  t->shape = ints(a[2], "size");
  t->stride = ints(a[3], "stride");
  if (func.ends_with("_v3")) {
    if (a[6]->kind != Value::Kind::Global || !dtype_globals().count(a[6]->s))
      bad(fmt::format("{}: unsupported dtype argument", func));
    t->dtype = dtype_globals().at(a[6]->s);
  }
  if (t->shape.size() != t->stride.size()) bad("tensor size and stride differ in length");
  Ref v = make(Value::Kind::Tensor);
  v->tensor = std::move(t);
  return v;
}

Ref Unpickler::call(const std::string& func, const Ref& args) {
  if (args->kind != Value::Kind::Tuple) bad(fmt::format("{} called with a {} instead of an argument tuple", func, kind_name(args->kind)));
  const std::vector<Ref>& a = args->items;
  if (func == "collections.OrderedDict" || func == "collections.Counter" || func == "builtins.set") {
    if (!a.empty()) bad(fmt::format("{} with arguments is not supported", func));
    return make(func == "builtins.set" ? Value::Kind::List : Value::Kind::Dict);
  }
  if (func.starts_with("torch._utils._rebuild_tensor")) return rebuild_tensor(func, a);
  if (func == "torch._utils._rebuild_parameter" || func == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Value::Kind::Tensor) bad(func + " needs a tensor");
    return a[0];
  }
  if (func == "torch._tensor._rebuild_from_type_v2") {
    // (func, new_type, args, state): a tensor subclass around a plain rebuild.
    if (a.size() < 3 || a[0]->kind != Value::Kind::Global) bad(func + ": malformed arguments");
    if (a[1]->kind != Value::Kind::Global || (a[1]->s != "torch.Tensor" && a[1]->s != "torch.nn.parameter.Parameter"))
      bad(func + ": only plain tensors and parameters are supported");
    return call(a[0]->s, a[2]);
  }
  if (func == "torch.Size") {
    if (a.size() != 1) bad("torch.Size needs one tuple");
    return tuple_of(a[0]->items);
  }
  if (func == "_codecs.encode") {
    if (a.empty() || a[0]->kind != Value::Kind::Str) bad("_codecs.encode needs a str");
    // latin-1 (what pickle's protocol 2 uses for bytes): each code point below 256 is one byte.
    std::string out;
    const std::string& s = a[0]->s;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c == 0xc2 || c == 0xc3) && i + 1 < s.size()) {
        out += static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f));
      } else {
        bad("_codecs.encode: a character outside latin-1");
      }
    }
    return make_str(Value::Kind::Bytes, out);
  }
  if (func == "torch.device" || func == "builtins.bytearray" || func == "torch.serialization._get_layout" ||
      func == "builtins.complex")
    return make(Value::Kind::Opaque);
  if (allowed_global(func))
    bad(fmt::format("{} is allowed by torch.load(weights_only=True) but tuneserve does not read it (only dense "
                    "float/int tensors)",
                    func));
  bad(fmt::format("REDUCE of {} is not allowed", func));
}

Ref Unpickler::run() {
  stack_.clear();
  marks_.clear();
  memo_.clear();
  while (true) {
    op_at_ = p_;
    const std::uint8_t op = *take(1);
    switch (op) {
      case 0x80:  // PROTO
        if (*take(1) > 5) bad("unknown pickle protocol");
        break;
      case '.':  // STOP
        if (stack_.size() != 1 || !marks_.empty()) bad("malformed pickle: the stack does not end with one value");
        return pop();
      case 'c': {  // GLOBAL
        std::string module = line(), name = line();
        if (module == "__builtin__") module = "builtins";  // Python 2 names, as torch maps them
        if (module == "copy_reg") module = "copyreg";
        const std::string full = module + "." + name;
        if (!allowed_global(full))
          bad(fmt::format("GLOBAL {} is not allowed (torch.load(weights_only=True) refuses it too); this file "
                          "would run code if loaded with pickle",
                          full));
        stack_.push_back(make_str(Value::Kind::Global, full));
        break;
      }
      case 'R': {  // REDUCE
        Ref args = pop();
        Ref& f = top();
        if (f->kind != Value::Kind::Global) bad(fmt::format("REDUCE of a {} (only allowed globals are callable)", kind_name(f->kind)));
        f = call(f->s, args);
        break;
      }
      case 0x81: {  // NEWOBJ
        Ref args = pop();
        Ref cls = pop();
        if (cls->kind != Value::Kind::Global) bad("NEWOBJ of a non-class");
        if (cls->s == "torch.nn.parameter.Parameter") {
          if (args->items.empty() || args->items[0]->kind != Value::Kind::Tensor) bad("Parameter needs a tensor");
          stack_.push_back(args->items[0]);
        } else if (cls->s == "collections.OrderedDict" || cls->s == "collections.Counter") {
          stack_.push_back(make(Value::Kind::Dict));
        } else if (cls->s == "builtins.set") {
          stack_.push_back(make(Value::Kind::List));
        } else if (cls->s == "torch.Tensor") {
          Ref t = make(Value::Kind::Tensor);  // filled by BUILD (storage, offset, size, stride)
          stack_.push_back(t);
        } else {
          bad(fmt::format("NEWOBJ of {} is not supported", cls->s));
        }
        break;
      }
      case 'b': {  // BUILD
        Ref state = pop();
        Ref& inst = top();
        if (inst->kind == Value::Kind::Dict) break;  // OrderedDict attributes (_metadata): not needed
        if (inst->kind == Value::Kind::Tensor && !inst->tensor) {
          if (state->kind != Value::Kind::Tuple) bad("torch.Tensor BUILD needs (storage, offset, size, stride)");
          inst = rebuild_tensor("torch._utils._rebuild_tensor", state->items);
          break;
        }
        if (inst->kind == Value::Kind::Tensor) break;  // a Parameter's state (requires_grad, hooks)
        bad(fmt::format("BUILD of a {} is not allowed", kind_name(inst->kind)));
      }
      case 'a': {  // APPEND
        Ref item = pop();
        if (top()->kind != Value::Kind::List) bad("APPEND to a non-list");
        top()->items.push_back(std::move(item));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Ref> items = pop_mark();
        if (top()->kind != Value::Kind::List) bad("APPENDS to a non-list");
        for (auto& i : items) top()->items.push_back(std::move(i));
        break;
      }
      case 's': {  // SETITEM
        Ref v = pop(), k = pop();
        if (top()->kind != Value::Kind::Dict) bad("SETITEM on a non-dict");
        top()->items.push_back(std::move(k));
        top()->items.push_back(std::move(v));
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Ref> items = pop_mark();
        if (items.size() % 2) bad("SETITEMS with an odd number of values");
        if (top()->kind != Value::Kind::Dict) bad("SETITEMS on a non-dict");
        for (auto& i : items) top()->items.push_back(std::move(i));
        break;
      }
      case '(':  // MARK
        if (marks_.size() >= kMaxDepth) bad(fmt::format("nesting deeper than {}", kMaxDepth));
        marks_.push_back(stack_.size());
        break;
      case 't':  // TUPLE
        stack_.push_back(tuple_of(pop_mark()));
        break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        const std::size_t n = op - 0x84;
        if (stack_.size() < n + (marks_.empty() ? 0 : marks_.back())) bad("stack underflow");
        std::vector<Ref> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        stack_.push_back(tuple_of(std::move(items)));
        break;
      }
      case 'N': stack_.push_back(make(Value::Kind::None)); break;
      case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
        Ref b = make(Value::Kind::Bool);
        b->i = op == 0x88;
        stack_.push_back(b);
        break;
      }
      case ')': stack_.push_back(make(Value::Kind::Tuple)); break;
      case ']': stack_.push_back(make(Value::Kind::List)); break;
      case '}': stack_.push_back(make(Value::Kind::Dict)); break;
      case 0x8f: stack_.push_back(make(Value::Kind::List)); break;  // EMPTY_SET
      case 'J': stack_.push_back(make_int(le<std::int32_t>())); break;
      case 'K': stack_.push_back(make_int(*take(1))); break;
      case 'M': stack_.push_back(make_int(le<std::uint16_t>())); break;
      case 'G': {  // BINFLOAT, big-endian
        std::uint64_t bits = 0;
        for (const std::uint8_t* b = take(8), *e = b + 8; b < e; ++b) bits = (bits << 8) | *b;
        Ref f = make(Value::Kind::Float);
        f->f = std::bit_cast<double>(bits);
        stack_.push_back(f);
        break;
      }
      case 0x8a: {  // LONG1: little-endian two's complement
        const std::size_t n = *take(1);
        const std::uint8_t* b = take(n);
        if (n <= 8) {
          std::uint64_t u = 0;
          for (std::size_t i = 0; i < n; ++i) u |= static_cast<std::uint64_t>(b[i]) << (8 * i);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~0ull << (8 * n);
          stack_.push_back(make_int(static_cast<std::int64_t>(u)));
        } else {
          stack_.push_back(make_str(Value::Kind::BigInt, std::string(reinterpret_cast<const char*>(b), n)));
        }
        break;
      }
      case 'X': {  // BINUNICODE
        const std::uint32_t n = le<std::uint32_t>();
        const std::uint8_t* b = take(n);
        stack_.push_back(make_str(Value::Kind::Str, std::string(reinterpret_cast<const char*>(b), n)));
        break;
      }
      case 'U': {  // SHORT_BINSTRING
        const std::size_t n = *take(1);
        const std::uint8_t* b = take(n);
        stack_.push_back(make_str(Value::Kind::Str, std::string(reinterpret_cast<const char*>(b), n)));
        break;
      }
      case 'Q': {  // BINPERSID
        Ref pid = pop();
        if (pid->kind != Value::Kind::Tuple || pid->items.empty() ||
            (pid->items[0]->kind != Value::Kind::Str && pid->items[0]->kind != Value::Kind::Bytes) ||
            pid->items[0]->s != "storage")
          bad("a persistent id other than ('storage', ...)");
        stack_.push_back(load_(pid));
        break;
      }
      case 'h': case 'j': {  // BINGET, LONG_BINGET
        const std::uint32_t i = op == 'h' ? *take(1) : le<std::uint32_t>();
        auto it = memo_.find(i);
        if (it == memo_.end()) bad(fmt::format("memo {} read before it was written", i));
        stack_.push_back(it->second);
        break;
      }
      case 'q': case 'r': {  // BINPUT, LONG_BINPUT
        const std::uint32_t i = op == 'q' ? *take(1) : le<std::uint32_t>();
        memo_[i] = top();
        break;
      }
      default:
        bad(fmt::format("opcode 0x{:02x} is not one torch.load(weights_only=True) accepts", op));
    }
  }
}

// ---------------------------------------------------------------- storages and tensors

DType storage_dtype(const Ref& type, const std::string& where) {
  if (type->kind == Value::Kind::Global && storage_types().count(type->s)) return storage_types().at(type->s);
  fail("{}: refused: storage type {} is not supported", where, type->kind == Value::Kind::Global ? type->s : "(not a class)");
}

std::uint64_t checked_numel(const Ref& v, const std::string& where) {
  if (v->kind != Value::Kind::Int || v->i < 0) fail("{}: refused: a storage size that is not a count", where);
  return static_cast<std::uint64_t>(v->i);
}

const std::uint8_t* storage_bytes(const StorageData& s) {
  if (s.root) return s.root->bytes ? s.root->bytes + s.view_offset * dtype_size(s.dtype) : nullptr;
  return s.bytes;
}

class TorchCheckpoint : public TensorFile {
 public:
  TorchCheckpoint(std::string path, std::vector<std::pair<std::string, std::shared_ptr<TensorDesc>>> tensors,
                  std::shared_ptr<MappedFile> file)
      : path_(std::move(path)), file_(std::move(file)) {
    for (auto& [name, t] : tensors) {
      check(name, *t);
      TensorInfo info;
      info.name = name;
      info.dtype = t->dtype;
      info.shape = t->shape;
      index_[name] = infos_.size();
      infos_.push_back(std::move(info));
      descs_.push_back(std::move(t));
    }
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }

  std::vector<std::uint8_t> read_bytes(const std::string& name) const override {
    const TensorDesc& t = *descs_[index_of(name)];
    const std::size_t es = dtype_size(t.dtype);
    const std::uint8_t* base = storage_bytes(*t.storage);
    std::size_t n = 1;
    for (auto d : t.shape) n *= static_cast<std::size_t>(d);
    std::vector<std::uint8_t> out(n * es);
    if (n == 0) return out;
    // Row-major walk over the index space, following the strides (views, transposes).
    const std::size_t rank = t.shape.size();
    std::vector<std::int64_t> idx(rank, 0);
    std::int64_t at = t.offset;
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(out.data() + i * es, base + static_cast<std::size_t>(at) * es, es);
      for (std::size_t d = rank; d-- > 0;) {
        if (++idx[d] < t.shape[d]) {
          at += t.stride[d];
          break;
        }
        at -= t.stride[d] * (t.shape[d] - 1);
        idx[d] = 0;
      }
    }
    return out;
  }

  std::vector<float> read_f32(const std::string& name) const override {
    const TensorInfo& i = info(name);
    if (!is_floating(i.dtype)) fail("{}: tensor '{}' is {}, expected a floating dtype", path_, name, dtype_name(i.dtype));
    const std::vector<std::uint8_t> bytes = read_bytes(name);
    std::vector<float> out(bytes.size() / dtype_size(i.dtype));
    convert_to_f32(i.dtype, bytes.data(), out.size(), out.data());
    return out;
  }

 private:
  std::size_t index_of(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) fail("{}: no tensor named '{}'", path_, name);
    return it->second;
  }
  // Every element the tensor can reach lies inside its storage.
  void check(const std::string& name, const TensorDesc& t) const {
    auto bad = [&](const std::string& why) { fail("{}: refused: tensor '{}': {}", path_, name, why); };
    if (!storage_bytes(*t.storage)) bad(fmt::format("storage {} has no data in the file", t.storage->key));
    if (dtype_size(t.dtype) != dtype_size(t.storage->dtype)) bad("dtype and storage element sizes differ");
    if (t.offset < 0) bad("negative storage offset");
    std::int64_t last = t.offset, count = 1;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] < 0 || t.stride[d] < 0) bad("negative size or stride");
      std::int64_t reach = 0;
      if (__builtin_mul_overflow(count, t.shape[d], &count) || count > (std::int64_t{1} << 48))
        bad("more elements than any model has");
      if (t.shape[d] > 0 &&
          (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &reach) || __builtin_add_overflow(last, reach, &last)))
        bad("strides reach past any storage");
    }
    if (count > 0 && static_cast<std::uint64_t>(last) >= t.storage->numel)
      bad(fmt::format("reaches element {} of a storage of {}", last, t.storage->numel));
  }

  std::string path_;
  std::shared_ptr<MappedFile> file_;  // legacy format: storages point into it
  std::vector<TensorInfo> infos_;
  std::vector<std::shared_ptr<TensorDesc>> descs_;
  std::map<std::string, std::size_t> index_;
};

// The state dict's (name, tensor) pairs; later keys win, as in Python.
std::vector<std::pair<std::string, std::shared_ptr<TensorDesc>>> state_dict_tensors(const Ref& root, const std::string& where) {
  if (root->kind != Value::Kind::Dict) fail("{}: refused: the pickle holds a {}, not a state dict", where, kind_name(root->kind));
  std::map<std::string, std::shared_ptr<TensorDesc>> by_name;
  std::vector<std::string> order;
  for (std::size_t i = 0; i + 1 < root->items.size(); i += 2) {
    const Ref& k = root->items[i];
    const Ref& v = root->items[i + 1];
    if (k->kind != Value::Kind::Str || v->kind != Value::Kind::Tensor || !v->tensor) continue;
    if (!by_name.count(k->s)) order.push_back(k->s);
    by_name[k->s] = v->tensor;
  }
  if (order.empty()) fail("{}: no tensors in the state dict (is this a full training checkpoint, not weights?)", where);
  std::vector<std::pair<std::string, std::shared_ptr<TensorDesc>>> out;
  for (const auto& name : order) out.emplace_back(name, by_name[name]);
  return out;
}

// ---------------------------------------------------------------- zip format (libarchive)

std::unique_ptr<TensorFile> open_zip(const std::string& path) {
  const std::uint64_t file_size = std::filesystem::file_size(path);
  // Entries are stored uncompressed by torch.save; anything inflating far beyond the file is a bomb.
  const std::uint64_t budget = 2 * file_size + (64u << 20);
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_zip_seekable(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    fail("{}: refused: not a readable zip: {}", path, archive_error_string(a.get()));
  std::map<std::string, std::vector<std::uint8_t>> entries;
  std::uint64_t total = 0;
  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    const char* name = archive_entry_pathname(entry);
    if (!name || archive_entry_filetype(entry) != AE_IFREG) continue;
    std::vector<std::uint8_t>& data = entries[name];
    std::uint8_t buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) {
      total += static_cast<std::uint64_t>(n);
      if (total > budget) fail("{}: refused: its entries inflate to more than {} bytes (a zip bomb?)", path, budget);
      data.insert(data.end(), buf, buf + n);
    }
    if (n < 0) fail("{}: refused: corrupt zip entry {}: {}", path, name, archive_error_string(a.get()));
  }
  if (rc != ARCHIVE_EOF) fail("{}: refused: corrupt zip: {}", path, archive_error_string(a.get()));

  // Entries are "<archive>/data.pkl", "<archive>/data/<key>" ...: find <archive>/.
  std::optional<std::string> found;
  for (const auto& [name, data] : entries) {
    if (name != "data.pkl" && !name.ends_with("/data.pkl")) continue;
    if (found) fail("{}: refused: more than one data.pkl", path);
    found = name;
  }
  if (!found) fail("{}: refused: a zip without data.pkl is not a PyTorch checkpoint", path);
  const std::string prefix(found->begin(), found->end() - 8);
  if (auto it = entries.find(prefix + "byteorder"); it != entries.end() &&
                                                     std::string(it->second.begin(), it->second.end()) != "little")
    fail("{}: refused: big-endian checkpoints are not supported", path);
  const std::vector<std::uint8_t>& pickle = entries[prefix + "data.pkl"];
  if (pickle.size() > kMaxPickleBytes) fail("{}: refused: data.pkl is larger than {} bytes", path, kMaxPickleBytes);

  std::map<std::string, std::shared_ptr<StorageData>> storages;
  const std::string where = path + " (data.pkl)";
  Unpickler u(pickle.data(), pickle.size(), where, [&](const Ref& pid) {
    // ('storage', storage_type, key, location, numel)
    if (pid->items.size() != 5) fail("{}: refused: a storage id of {} fields, expected 5", where, pid->items.size());
    const Ref& key = pid->items[2];
    if (key->kind != Value::Kind::Str) fail("{}: refused: a storage key that is not a string", where);
    auto& s = storages[key->s];
    if (!s) {
      s = std::make_shared<StorageData>();
      s->dtype = storage_dtype(pid->items[1], where);
      s->key = key->s;
      s->numel = checked_numel(pid->items[4], where);
      auto it = entries.find(prefix + "data/" + key->s);
      if (it == entries.end()) fail("{}: refused: storage {} has no data/{} entry", path, key->s, key->s);
      if (s->numel > it->second.size() / dtype_size(s->dtype))
        fail("{}: refused: storage {} announces {} elements, its entry holds {} bytes (truncated?)", path, key->s,
             s->numel, it->second.size());
      s->owned = std::move(it->second);
      s->bytes = s->owned.data();
    }
    Ref v = make(Value::Kind::Storage);
    v->storage = s;
    return v;
  });
  return std::make_unique<TorchCheckpoint>(path, state_dict_tensors(u.run(), where), nullptr);
}

// ---------------------------------------------------------------- legacy format

std::unique_ptr<TensorFile> open_legacy(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  const std::uint8_t* data = file->data();
  const std::size_t size = file->size();
  std::size_t at = 0;
  std::map<std::string, std::shared_ptr<StorageData>> roots;
  const std::string where = path + " (legacy format)";
  auto next = [&](const PersistentLoad& load) {
    Unpickler u(data + at, size - at, where, load);
    Ref v = u.run();
    at += u.consumed();
    return v;
  };
  const PersistentLoad none = [&](const Ref&) -> Ref { fail("{}: refused: a storage where none belongs", where); };
  const Ref magic = next(none);
  static const std::string kMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);  // 0x1950a86a20f9469cfc6c
  if (magic->kind != Value::Kind::BigInt || magic->s != kMagic) fail("{}: refused: not a PyTorch checkpoint (no magic number)", path);
  const Ref protocol = next(none);
  if (protocol->kind != Value::Kind::Int || protocol->i != 1001) fail("{}: refused: unknown legacy protocol", path);
  const Ref sys_info = next(none);
  if (sys_info->kind == Value::Kind::Dict)
    for (std::size_t i = 0; i + 1 < sys_info->items.size(); i += 2)
      if (sys_info->items[i]->s == "little_endian" && sys_info->items[i + 1]->i == 0)
        fail("{}: refused: big-endian checkpoints are not supported", path);
  const Ref root = next([&](const Ref& pid) {
    // ('storage', storage_type, root_key, location, numel, view_metadata)
    if (pid->items.size() != 6 || pid->items[2]->kind != Value::Kind::Str)
      fail("{}: refused: a malformed storage id", where);
    auto& s = roots[pid->items[2]->s];
    if (!s) {
      s = std::make_shared<StorageData>();
      s->dtype = storage_dtype(pid->items[1], where);
      s->key = pid->items[2]->s;
      s->numel = checked_numel(pid->items[4], where);
    }
    Ref v = make(Value::Kind::Storage);
    v->storage = s;
    const Ref& view = pid->items[5];
    if (view->kind == Value::Kind::Tuple) {  // (view_key, offset, view_size)
      if (view->items.size() != 3) fail("{}: refused: a malformed storage view", where);
      auto vs = std::make_shared<StorageData>();
      vs->dtype = s->dtype;
      vs->key = s->key;
      vs->root = s;
      vs->view_offset = checked_numel(view->items[1], where);
      vs->numel = checked_numel(view->items[2], where);
      if (vs->view_offset + vs->numel > s->numel) fail("{}: refused: a storage view past its storage", where);
      v->storage = vs;
    }
    return v;
  });
  const Ref keys = next(none);
  if (keys->kind != Value::Kind::List) fail("{}: refused: no storage key list", where);
  for (const Ref& k : keys->items) {
    if (k->kind != Value::Kind::Str || !roots.count(k->s)) fail("{}: refused: unknown storage key in the key list", where);
    StorageData& s = *roots[k->s];
    if (size - at < 8) fail("{}: refused: truncated before storage {}", where, k->s);
    std::uint64_t numel;
    std::memcpy(&numel, data + at, 8);
    at += 8;
    if (numel != s.numel) fail("{}: refused: storage {} holds {} elements, its id said {}", where, k->s, numel, s.numel);
    if (numel > (size - at) / dtype_size(s.dtype)) fail("{}: refused: storage {} is truncated", where, k->s);
    s.bytes = data + at;
    at += numel * dtype_size(s.dtype);
  }
  return std::make_unique<TorchCheckpoint>(path, state_dict_tensors(root, where), file);
}

}  // namespace

bool looks_like_torch_checkpoint(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char head[4] = {0};
  const std::size_t n = std::fread(head, 1, 4, f);
  std::fclose(f);
  return n >= 2 && ((head[0] == 'P' && head[1] == 'K') || (head[0] == 0x80 && head[1] == 0x02));
}

std::unique_ptr<TensorFile> open_torch_checkpoint(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("{}: no such file", path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot read", path);
  unsigned char head[2] = {0};
  const std::size_t n = std::fread(head, 1, 2, f);
  std::fclose(f);
  if (n == 2 && head[0] == 'P' && head[1] == 'K') return open_zip(path);
  if (n == 2 && head[0] == 0x80 && head[1] == 0x02) return open_legacy(path);
  fail("{}: refused: neither a PyTorch zip checkpoint nor the legacy pickle format", path);
}

}  // namespace tuneserve
