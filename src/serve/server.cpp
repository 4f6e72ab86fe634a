// The HTTP endpoint on Boost.Beast (see server.h). One Session per connection, each on its own
// strand: read a header (idle/slowloris deadline), refuse an over-large body before reading it,
// read the body, hand the request to the router, watch the socket for the client leaving while
// the answer is computed, write the answer, repeat (keep-alive). The router answers cheap routes
// at once and sends inference to the request pool (decode + tokenize) and the model's batcher.
#include "serve/server.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/version.hpp>

#include <condition_variable>
#include <filesystem>
#include <optional>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/json.h"

static_assert(BOOST_VERSION >= 108100, "tuneserve's server is written against Boost 1.81 headers");

namespace tuneserve::serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

struct Reply {
  explicit Reply(int status = 200, std::string body = {},
                 std::string content_type = "application/json")
      : status(status), body(std::move(body)), content_type(std::move(content_type)) {}
  int status;
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
};

Reply error_reply(int status, std::string_view type, std::string_view message) {
  Reply reply(status, error_body(message, type));
  // Overload and not-ready are temporary: tell clients when to come back.
  if (status == 503) reply.headers.emplace_back("Retry-After", "1");
  return reply;
}

Reply error_reply(const HttpError& e) { return error_reply(e.status, e.type, e.what()); }

// Who is at fault for a tuneserve::Error: request handling blames the input (400); once a job has
// reached the model, a failure is the server's (500 "backend").
enum class Blame { Request, Backend };

// The reply for the exception being handled (call only inside a catch block): an HttpError keeps
// its status; tuneserve::Error as `blame` says; anything else is a 500.
Reply current_exception_reply(Blame blame) {
  const std::string_view internal = blame == Blame::Request ? "internal" : "backend";
  try {
    throw;
  } catch (const HttpError& e) {
    return error_reply(e);
  } catch (const Error& e) {
    return blame == Blame::Request ? error_reply(400, "validation", e.what()) : error_reply(500, internal, e.what());
  } catch (const std::exception& e) {
    return error_reply(500, internal, e.what());
  } catch (...) {
    return error_reply(500, internal, "unknown error");
  }
}

// One request from its last byte to its answer. The answer is sent once: by the router, the
// batcher, or the response timer, whichever comes first.
struct Exchange {
  std::string route = "other";
  Clock::time_point start = Clock::now();
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  std::atomic<bool> answered{false};
  std::function<void(Reply)> send;
};

std::string header(const Request& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> query_of(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    std::size_t eq = kv.find('=');
    out[percent_decode(kv.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : percent_decode(kv.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    std::size_t slash = path.find('/');
    parts.push_back(percent_decode(path.substr(0, slash)));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return parts;
}

bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return name != "." && name != "..";
}

json model_json(const Model& model) {
  const ModelInfo& info = model.backend->info();
  return json{{"name", model.name},
              {"version", model.version},
              {"model_id", info.id},
              {"model_type", info.model_type},
              {"labels", info.labels.id2label},
              {"max_input_length", info.max_input_length},
              {"device", info.device},
              {"dtype", info.dtype},
              {"workers", model.batcher->workers()},
              {"queued", model.batcher->admitted()},
              {"load_seconds", model.load_seconds}};
}

class Session;
class Listener;

}  // namespace

struct Server::Impl {
  Impl(ServerConfig c, ModelRegistry& m, Metrics& x) : config(std::move(c)), models(m), metrics(x) {
    // A decoded document is never larger than the body it came in (a handler's input_fn included).
    config.limits.max_bytes = config.max_payload_bytes;
  }

  ServerConfig config;
  ModelRegistry& models;
  Metrics& metrics;
  // Declared before the io_context: sessions still queued in it unregister when it is destroyed.
  std::mutex sessions_mutex;
  std::condition_variable sessions_cv;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  bool started = false;

  std::unique_ptr<asio::thread_pool> pool;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> io_threads;
  std::shared_ptr<Listener> listener, management;  // hold acceptors: destroyed before ioc

  void add_session(Session* s, std::weak_ptr<Session> w);
  void remove_session(Session* s);
  std::size_t session_count();

  bool finish(Exchange& ex, Reply reply);
  void timeout(Exchange& ex);
  void handle(Request& req, const std::shared_ptr<Exchange>& ex, bool management_port);
  void route(Request& req, const std::shared_ptr<Exchange>& ex);
  void route_management(Request& req, const std::shared_ptr<Exchange>& ex);
  void check_auth(const Request& req) const;
  void inference(Request& req, const std::shared_ptr<Exchange>& ex, std::shared_ptr<Model> model,
                 Shape shape);
  void tokenize(Request& req, const std::shared_ptr<Exchange>& ex);
  Reply info() const;
  std::shared_ptr<Model> model_for(const std::string& name, bool must_exist) const;
  std::string store_path(const std::string& relative) const;
  // Runs `work` on the request pool and answers with its Reply (or its error).
  void answer_on_pool(const std::shared_ptr<Exchange>& ex, std::function<Reply()> work);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl& server, bool management)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server),
        management_(management) {}
  ~Session() { server_.remove_session(this); }

  void start() {
    server_.add_session(this, weak_from_this());
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

  // SIGTERM: a connection waiting for its next request closes now; one mid-request finishes
  // its request and then closes (keep-alive is off while draining).
  void drain() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::idle && self->buffer_.size() == 0 &&
          !(self->header_ && self->header_->got_some()))
        self->close();
    });
  }

 private:
  enum class State { idle, reading, waiting, writing, closed };

  const ServerConfig& config() const { return server_.config; }

  void read_header() {
    if (state_ == State::closed) return;
    if (server_.draining) return close();
    state_ = State::idle;
    header_.emplace();
    header_->header_limit(static_cast<std::uint32_t>(config().max_header_bytes));
    header_->body_limit(config().max_payload_bytes);
    stream_.expires_after(config().idle_timeout);
    http::async_read_header(stream_, buffer_, *header_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      if (ec == http::error::body_limit)  // Content-Length over the limit, seen in the header
        return reply_and_close(413, "payload_too_large",
                               fmt::format("the body is over the limit of {} bytes",
                                           config().max_payload_bytes));
      if (ec == http::error::header_limit)
        return reply_and_close(431, "validation",
                               fmt::format("request header is over the limit of {} bytes",
                                           config().max_header_bytes));
      if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message)
        return reply_and_close(400, "validation", "malformed HTTP request: " + ec.message());
      return close();
    }
    state_ = State::reading;
    const auto length = header_->content_length();
    if (length && *length > config().max_payload_bytes)
      return reply_and_close(413, "payload_too_large",
                             fmt::format("the body is {} bytes, over the limit of {} bytes",
                                         *length, config().max_payload_bytes));
    body_.emplace(std::move(*header_));
    header_.reset();
    body_->body_limit(config().max_payload_bytes);
    stream_.expires_after(config().read_timeout);
    if (beast::iequals(body_->get()[http::field::expect], "100-continue")) {
      auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *body_,
                     beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit)
      return reply_and_close(413, "payload_too_large",
                             fmt::format("the body is over the limit of {} bytes",
                                         config().max_payload_bytes));
    if (ec) return close();
    request_ = body_->release();
    body_.reset();
    stream_.expires_never();
    state_ = State::waiting;
    keep_alive_ = request_.keep_alive();

    auto ex = std::make_shared<Exchange>();
    exchange_ = ex;
    std::weak_ptr<Session> weak = shared_from_this();
    auto executor = stream_.get_executor();
    ex->send = [weak, executor](Reply reply) {
      asio::post(executor, [weak, reply = std::move(reply)]() mutable {
        if (auto self = weak.lock()) self->write(std::move(reply));
      });
    };
    timer_.expires_after(config().response_timeout);
    timer_.async_wait([self = shared_from_this(), ex](beast::error_code e) {
      if (!e) self->server_.timeout(*ex);
    });
    if (buffer_.size() == 0) watch();
    server_.handle(request_, ex, management_);
  }

  // While the answer is computed, a read on the socket notices the client leaving (EOF), so its
  // work is dropped before the model runs. Bytes that arrive (a pipelined request) are kept.
  void watch() {
    watching_ = true;
    stream_.socket().async_read_some(
        buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          self->on_watch(ec, n);
        });
  }

  void on_watch(beast::error_code ec, std::size_t n) {
    watching_ = false;
    if (state_ == State::closed) return;
    if (!ec) {
      buffer_.commit(n);
      if (state_ == State::waiting) {
        if (buffer_.size() < 65536) watch();
      } else if (state_ == State::idle) {
        read_header();
      }
      return;
    }
    if (ec == asio::error::operation_aborted && state_ == State::idle) return read_header();
    if (exchange_) exchange_->cancelled->store(true);
    close();
  }

  void write(Reply reply) {
    if (state_ == State::closed) return;
    timer_.cancel();
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "tuneserve/" TUNESERVE_VERSION);
    res->set(http::field::content_type, reply.content_type);
    for (const auto& [k, v] : reply.headers) res->set(k, v);
    res->body() = std::move(reply.body);
    res->keep_alive(keep_alive_ && !server_.draining);
    res->prepare_payload();
    state_ = State::writing;
    stream_.expires_after(config().read_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        self->on_write(ec, res->keep_alive());
                      });
  }

  void on_write(beast::error_code ec, bool keep_alive) {
    exchange_.reset();
    request_ = {};
    if (ec) return close();
    if (!keep_alive) return linger_close();
    state_ = State::idle;
    if (watching_) {
      // The watching read restarts the cycle when it comes back (aborted or with bytes).
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    read_header();
  }

  // Answers a request whose body will not be read, then closes.
  void reply_and_close(int status, const char* type, const std::string& message) {
    keep_alive_ = false;
    state_ = State::waiting;
    server_.metrics.inc("tuneserve_requests_total", {{"route", "other"}, {"code", std::to_string(status)}});
    write(error_reply(status, type, message));
  }

  // Half-close, then read and discard for a moment: closing with unread bytes makes the kernel
  // send a reset that can destroy the answer before the client reads it.
  void linger_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    state_ = State::closed;
    timer_.cancel();
    stream_.expires_after(std::chrono::seconds(1));
    discard();
  }

  void discard() {
    auto buf = std::make_shared<std::array<char, 4096>>();
    stream_.async_read_some(asio::buffer(*buf), [self = shared_from_this(), buf](beast::error_code ec, std::size_t) {
      if (ec) {
        beast::error_code ignored;
        self->stream_.socket().close(ignored);
        return;
      }
      self->discard();
    });
  }

  void close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    timer_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  Server::Impl& server_;
  bool management_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_;
  std::optional<http::request_parser<http::string_body>> body_;
  Request request_;
  std::shared_ptr<Exchange> exchange_;
  State state_ = State::idle;
  bool keep_alive_ = true;
  bool watching_ = false;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(Server::Impl& server, const std::string& host, int port, bool management)
      : server_(server), acceptor_(asio::make_strand(server.ioc)), management_(management) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) fail("serve: host \"{}\" is not an IP address: {}", host, ec.message());
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail("serve: cannot listen on {}:{}: {}", host, port, ec.message());
    port_ = acceptor_.local_endpoint().port();
  }

  int port() const { return port_; }

  void accept() {
    acceptor_.async_accept(asio::make_strand(server_.ioc),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (server_.session_count() >= server_.config.max_connections) {
        reject(std::move(socket));
      } else {
        std::make_shared<Session>(std::move(socket), server_, management_)->start();
      }
    }
    accept();
  }

  // Over the connection limit: a canned 503 instead of holding the socket.
  static void reject(tcp::socket socket) {
    static const std::string busy = [] {
      const std::string body = error_body("too many open connections; retry later", "overloaded");
      return fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: "
          "1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
          body.size(), body);
    }();
    auto s = std::make_shared<tcp::socket>(std::move(socket));
    asio::async_write(*s, asio::buffer(busy), [s](beast::error_code, std::size_t) {
      beast::error_code ignored;
      s->shutdown(tcp::socket::shutdown_both, ignored);
      s->close(ignored);
    });
  }

  Server::Impl& server_;
  tcp::acceptor acceptor_;
  bool management_;
  int port_ = 0;
};

}  // namespace

void Server::Impl::add_session(Session* s, std::weak_ptr<Session> w) {
  std::lock_guard lock(sessions_mutex);
  sessions[s] = std::move(w);
  metrics.set("tuneserve_connections", {}, double(sessions.size()));
}

void Server::Impl::remove_session(Session* s) {
  {
    std::lock_guard lock(sessions_mutex);
    sessions.erase(s);
    metrics.set("tuneserve_connections", {}, double(sessions.size()));
  }
  sessions_cv.notify_all();
}

std::size_t Server::Impl::session_count() {
  std::lock_guard lock(sessions_mutex);
  return sessions.size();
}

bool Server::Impl::finish(Exchange& ex, Reply reply) {
  if (ex.answered.exchange(true)) return false;
  const std::string code = std::to_string(reply.status);
  metrics.inc("tuneserve_requests_total", {{"route", ex.route}, {"code", code}});
  if (reply.status < 400)
    metrics.inc("tuneserve_request_success_total", {{"route", ex.route}});
  else
    metrics.inc("tuneserve_request_failure_total", {{"route", ex.route}, {"code", code}});
  metrics.observe("tuneserve_request_duration_seconds", {{"route", ex.route}},
                  std::chrono::duration<double>(Clock::now() - ex.start).count());
  metrics.add("tuneserve_in_flight", {}, -1);
  if (ex.send) ex.send(std::move(reply));
  return true;
}

void Server::Impl::timeout(Exchange& ex) {
  if (ex.answered) return;
  ex.cancelled->store(true);  // drops the work if it has not reached the model yet
  finish(ex, error_reply(504, "timeout",
                         fmt::format("no answer within {} ms; the request was dropped",
                                     config.response_timeout.count())));
}

void Server::Impl::handle(Request& req, const std::shared_ptr<Exchange>& ex, bool management_port) {
  metrics.add("tuneserve_in_flight", {}, 1);
  try {
    if (management_port)
      route_management(req, ex);
    else
      route(req, ex);
  } catch (...) {
    finish(*ex, current_exception_reply(Blame::Request));
  }
}

void Server::Impl::check_auth(const Request& req) const {
  const bool bearer_on = !config.api_key.empty(), sigv4_on = !config.sigv4.empty();
  if (!bearer_on && !sigv4_on) return;  // open: SigV4 signatures are accepted unchecked
  const std::string auth = header(req, "Authorization");
  if (is_sigv4(auth)) {
    if (!sigv4_on)
      http_fail(401, "unauthorized", "this endpoint takes Authorization: Bearer <key>, not SigV4 signatures");
    SignedRequest signed_request{req.method_string(), req.target(), {}, req.body()};
    for (const auto& field : req) signed_request.headers.emplace_back(field.name_string(), field.value());
    if (std::string why = sigv4_verify(config.sigv4, signed_request, std::chrono::system_clock::now()); !why.empty())
      http_fail(403, "forbidden", "SigV4 check failed: {}", why);
    return;
  }
  constexpr std::string_view bearer = "Bearer ";
  if (!bearer_on || auth.size() <= bearer.size() || !beast::iequals(auth.substr(0, bearer.size()), bearer) ||
      !constant_time_equal(std::string_view(auth).substr(bearer.size()), config.api_key))
    http_fail(401, "unauthorized", "{}", bearer_on && sigv4_on
                                             ? "missing or wrong credentials (send Authorization: Bearer <key> or sign "
                                               "the request with AWS SigV4)"
                                         : bearer_on ? "missing or wrong API key (send Authorization: Bearer <key>)"
                                                     : "this endpoint takes AWS SigV4-signed requests only");
}

std::shared_ptr<Model> Server::Impl::model_for(const std::string& name, bool must_exist) const {
  if (!name.empty()) {
    if (auto model = models.find(name)) return model;
    if (must_exist) http_fail(404, "not_found", "unknown model \"{}\"", text_excerpt(name));
  }
  auto model = models.default_model();
  if (!model) http_fail(503, "unhealthy", "no model is loaded");
  return model;
}

void Server::Impl::route(Request& req, const std::shared_ptr<Exchange>& ex) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const auto parts = split_path(path);
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  const bool post = req.method() == http::verb::post;
  auto need = [&](bool ok, const char* allow) {
    if (!ok) http_fail(405, "validation", "{} is not allowed on {}; use {}",
                       std::string(req.method_string()), text_excerpt(path), allow);
  };

  if (parts.size() == 1 && (parts[0] == "ping" || parts[0] == "health")) {
    ex->route = "/" + parts[0];
    need(get, "GET");
    if (!models.ready()) http_fail(503, "unhealthy", "the model is not loaded yet");
    finish(*ex, Reply{200, R"({"status":"healthy"})"});
    return;
  }
  check_auth(req);
  if (parts.size() == 1 && parts[0] == "metrics") {
    ex->route = "/metrics";
    need(get, "GET");
    finish(*ex, Reply{200, metrics.render(), "text/plain; version=0.0.4"});
    return;
  }
  if (parts.size() == 1 && parts[0] == "info") {
    ex->route = "/info";
    need(get, "GET");
    finish(*ex, info());
    return;
  }
  if (parts.size() == 1 && parts[0] == "tokenize") {
    ex->route = "/tokenize";
    need(post, "POST");
    tokenize(req, ex);
    return;
  }
  if (parts.empty()) {
    ex->route = "/";
    need(post, "POST");
    inference(req, ex, model_for("", false), Shape::inference_api);
    return;
  }
  if (parts.size() == 1 && (parts[0] == "invocations" || parts[0] == "predict")) {
    ex->route = "/" + parts[0];
    need(post, "POST");
    // SageMaker multi-model endpoints name the model in this header.
    const std::string target_model = header(req, "X-Amzn-SageMaker-Target-Model");
    inference(req, ex, model_for(target_model, !target_model.empty()), Shape::pipeline);
    return;
  }
  if (parts.size() == 3 && parts[0] == "endpoints" && parts[2] == "invocations") {
    ex->route = "/endpoints/{name}/invocations";
    need(post, "POST");
    // The endpoint is this server whatever its name; a model of that name is picked if loaded.
    inference(req, ex, model_for(parts[1], false), Shape::pipeline);
    return;
  }
  if (parts.size() == 2 && (parts[0] == "predictions" || parts[0] == "models")) {
    ex->route = "/predictions/{model}";
    need(post, "POST");
    inference(req, ex, model_for(parts[1], true), Shape::pipeline);
    return;
  }
  http_fail(404, "not_found", "no route for {} {}", std::string(req.method_string()), text_excerpt(path));
}

Reply Server::Impl::info() const {
  const auto& batch = models.defaults();
  json out{{"version", TUNESERVE_VERSION},
           {"max_batch_tokens", batch.max_batch_tokens},
           {"max_batch_requests", batch.max_batch_requests},
           {"max_batch_delay_ms", batch.max_batch_delay.count() / 1000.0},
           {"max_client_batch_size", config.limits.max_inputs},
           {"job_queue_size", batch.queue_size},
           {"max_payload_bytes", config.max_payload_bytes},
           {"response_timeout_ms", config.response_timeout.count()},
           {"models", json::array()}};
  if (auto model = models.default_model()) {
    const ModelInfo& info = model->backend->info();
    out["model_id"] = info.id;
    out["model_type"] = info.model_type;
    out["labels"] = info.labels.id2label;
    out["max_input_length"] = info.max_input_length;
    out["device"] = info.device;
    out["dtype"] = info.dtype;
    out["workers"] = model->batcher->workers();
  }
  for (const auto& model : models.list()) out["models"].push_back(model_json(*model));
  return Reply{200, out.dump()};
}

void Server::Impl::answer_on_pool(const std::shared_ptr<Exchange>& ex, std::function<Reply()> work) {
  asio::post(*pool, [this, ex, work = std::move(work)] {
    if (ex->cancelled->load()) return;
    try {
      finish(*ex, work());
    } catch (...) {
      finish(*ex, current_exception_reply(Blame::Request));
    }
  });
}

namespace {

// Holds one of a model's job-queue places until the request's work is gone.
struct Admission {
  explicit Admission(std::shared_ptr<Model> m) : model(std::move(m)) {}
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { model->batcher->release(); }
  std::shared_ptr<Model> model;
};

std::vector<Encoding> tokenize_all(const Backend& backend, const ParsedRequest& request) {
  const ModelInfo& info = backend.info();
  check_options(request.options, info);
  std::vector<Encoding> encodings;
  encodings.reserve(request.inputs.inputs.size());
  for (std::size_t i = 0; i < request.inputs.inputs.size(); ++i) {
    try {
      encodings.push_back(backend.tokenize(request.inputs.inputs[i], request.options.tokenize));
    } catch (const InputTooLongError& e) {
      http_fail(422, "too_long", "inputs[{}]: {}", i, e.what());
    }
  }
  return encodings;
}

}  // namespace

void Server::Impl::inference(Request& req, const std::shared_ptr<Exchange>& ex,
                             std::shared_ptr<Model> model, Shape shape) {
  const std::string content_type = header(req, "Content-Type");
  const std::string accept = header(req, "Accept");
  const std::shared_ptr<HandlerPlugin> handler = config.handler;
  const bool custom_in = handler && (handler->has_input() || handler->has_transform());
  const bool custom_out = handler && (handler->has_output() || handler->has_transform());
  const Format in = custom_in ? Format::json : content_format(content_type);
  const Format out = custom_out ? Format::json : accept_format(accept);
  if (!model->batcher->try_admit())
    http_fail(503, "overloaded", "model {}: the job queue is full ({} requests); retry later",
              model->name, model->batcher->config().queue_size);
  auto admission = std::make_shared<Admission>(model);

  asio::post(*pool, [this, ex, model, admission, shape, in, out, handler, content_type, accept,
                     body = std::move(req.body())]() mutable {
    try {
      if (ex->cancelled->load()) return;
      if (handler && handler->has_transform()) {
        auto result = handler->transform(body, content_type, accept);
        finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
        return;
      }
      const auto start = Clock::now();
      if (handler && handler->has_predict()) {
        std::string request_json = handler->has_input() ? handler->input(body, content_type) : body;
        if (!handler->has_input() && in != Format::json)
          http_fail(415, "unsupported_media_type",
                    "this handler's predict_fn takes application/json (it has no input_fn)");
        std::string prediction = handler->predict(request_json);
        if (handler->has_output()) {
          auto result = handler->output(prediction, accept);
          finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
        } else {
          finish(*ex, Reply{200, std::move(prediction)});
        }
        return;
      }
      auto request = std::make_shared<ParsedRequest>(parse_request(
          in, handler && handler->has_input() ? handler->input(body, content_type) : body,
          config.limits));
      body.clear();
      Job job;
      job.encodings = tokenize_all(*model->backend, *request);
      job.cancelled = ex->cancelled;
      metrics.observe("tuneserve_tokenize_duration_seconds", {{"model", model->name}},
                      std::chrono::duration<double>(Clock::now() - start).count());
      job.done = [this, ex, model, admission, request, shape, out, handler, accept](
                     std::vector<float> logits, std::exception_ptr error) {
        if (!error && logits.empty()) return;  // dropped: the client left or timed out
        try {
          if (error) std::rethrow_exception(error);
          const ModelInfo& info = model->backend->info();
          const std::size_t n = request->inputs.inputs.size();
          const std::size_t K = logits.size() / n;
          PostprocessOptions options = request->options.postprocess;
          options.top_k = effective_top_k(request->options, shape);
          std::vector<std::vector<LabelScore>> results;
          for (std::size_t i = 0; i < n; ++i)
            results.push_back(tuneserve::postprocess(
                std::span<const float>(logits).subspan(i * K, K), info.labels, options));
          if (handler && handler->has_output()) {
            auto result = handler->output(
                encode_response(*request, results, Shape::pipeline, Format::json), accept);
            finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
          } else {
            finish(*ex, Reply{200, encode_response(*request, results, shape, out),
                              media_type(out)});
          }
        } catch (...) {
          finish(*ex, current_exception_reply(Blame::Backend));
        }
      };
      model->batcher->push(std::move(job));
    } catch (...) {
      finish(*ex, current_exception_reply(Blame::Request));
    }
  });
}

void Server::Impl::tokenize(Request& req, const std::shared_ptr<Exchange>& ex) {
  auto model = model_for(header(req, "X-Amzn-SageMaker-Target-Model"), false);
  const Format in = content_format(header(req, "Content-Type"));
  if (!model->batcher->try_admit())
    http_fail(503, "overloaded", "model {}: the job queue is full; retry later", model->name);
  auto admission = std::make_shared<Admission>(model);
  answer_on_pool(ex, [this, model, admission, in, body = std::move(req.body())] {
    const ParsedRequest request = parse_request(in, body, config.limits);
    const auto encodings = tokenize_all(*model->backend, request);
    json out = json::array();
    for (const auto& e : encodings) {
      json offsets = json::array();
      for (const auto& [b, end] : e.offsets) offsets.push_back({b, end});
      out.push_back({{"input_ids", e.ids},
                     {"token_type_ids", e.type_ids},
                     {"attention_mask", e.attention_mask},
                     {"offsets", offsets}});
    }
    return Reply{200, out.dump()};
  });
}

std::string Server::Impl::store_path(const std::string& relative) const {
  namespace fs = std::filesystem;
  if (config.model_store.empty())
    http_fail(400, "validation", "no model store is configured (--model-store)");
  const fs::path rel(relative);
  if (relative.empty() || rel.is_absolute())
    http_fail(400, "validation", "model path \"{}\" must be relative to the model store",
              text_excerpt(relative));
  for (const auto& part : rel)
    if (part == "..")
      http_fail(403, "forbidden", "model path \"{}\" leaves the model store", text_excerpt(relative));
  std::error_code ec;
  const fs::path store = fs::weakly_canonical(config.model_store, ec);
  const fs::path full = fs::weakly_canonical(store / rel, ec);
  // Symbolic links are resolved first, so a link pointing outside is caught too.
  auto [s, f] = std::mismatch(store.begin(), store.end(), full.begin(), full.end());
  if (ec || s != store.end())
    http_fail(403, "forbidden", "model path \"{}\" leaves the model store", text_excerpt(relative));
  if (!fs::is_directory(full))
    http_fail(404, "not_found", "model path \"{}\" is not a directory in the model store",
              text_excerpt(relative));
  return full.string();
}

void Server::Impl::route_management(Request& req, const std::shared_ptr<Exchange>& ex) {
  check_auth(req);
  const std::string_view target = req.target();
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  auto query = query_of(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  const auto parts = split_path(path);
  json body = json::object();
  if (!req.body().empty()) {
    try {
      body = parse_json(req.body(), "body", JsonLimits{config.max_payload_bytes});
    } catch (const JsonError& e) {
      http_fail(400, "validation", "{}", e.what());
    }
    if (!body.is_object()) http_fail(400, "validation", "body: expected a JSON object");
  }
  auto param = [&](const char* a, const char* b = nullptr) -> std::optional<std::string> {
    for (const char* key : {a, b}) {
      if (!key) continue;
      if (body.contains(key)) {
        const json& v = body[key];
        return v.is_string() ? v.get<std::string>() : v.dump();
      }
      if (query.count(key)) return query[key];
    }
    return std::nullopt;
  };
  auto workers_param = [&]() -> std::optional<int> {
    auto w = param("workers", "min_worker");
    if (!w) return std::nullopt;
    char* end = nullptr;
    const long n = std::strtol(w->c_str(), &end, 10);
    if (end == w->c_str() || *end != '\0' || n < 1 || n > 256)
      http_fail(400, "validation", "workers: expected an integer in 1..256, got \"{}\"", text_excerpt(*w));
    return static_cast<int>(n);
  };
  if (parts.empty() || parts[0] != "models" || parts.size() > 2)
    http_fail(404, "not_found", "no route for {} {} (management: /models, /models/{{name}})",
              std::string(req.method_string()), text_excerpt(path));
  ex->route = parts.size() == 1 ? "mgmt:/models" : "mgmt:/models/{name}";

  if (parts.size() == 1 && req.method() == http::verb::get) {
    json out = json::array();
    for (const auto& model : models.list()) out.push_back(model_json(*model));
    finish(*ex, Reply{200, json{{"models", out}}.dump()});
    return;
  }
  if (parts.size() == 1 && req.method() == http::verb::post) {
    const auto name = param("name", "model_name");
    const auto dir = param("path", "url");
    if (!name || !valid_model_name(*name))
      http_fail(400, "validation", "name: expected 1-64 letters, digits, '-', '_' or '.'");
    if (!dir) http_fail(400, "validation", "path: the model's directory inside the model store");
    if (!config.loader) http_fail(500, "internal", "this server cannot load models");
    if (models.find(*name)) http_fail(409, "conflict", "model \"{}\" is already loaded", *name);
    const std::string full = store_path(*dir);
    const auto workers = workers_param();
    answer_on_pool(ex, [this, name = *name, full, workers] {
      auto model = models.load(name, full, config.loader, workers);
      if (config.handler) config.handler->model_fn(full);
      return Reply{201, model_json(*model).dump()};
    });
    return;
  }
  if (parts.size() != 2) http_fail(405, "validation", "use GET or POST on /models");
  const std::string name = parts[1];
  auto model = models.find(name);
  if (!model) http_fail(404, "not_found", "unknown model \"{}\"", text_excerpt(name));
  switch (req.method()) {
    case http::verb::get:
      finish(*ex, Reply{200, model_json(*model).dump()});
      return;
    case http::verb::delete_:
      // Unloading waits for the model's queued work: off the I/O thread.
      answer_on_pool(ex, [this, name] {
        if (!models.unload(name)) http_fail(404, "not_found", "unknown model \"{}\"", name);
        return Reply{200, json{{"unloaded", name}}.dump()};
      });
      return;
    case http::verb::put: {
      const auto workers = workers_param();
      if (!workers) http_fail(400, "validation", "workers: required (e.g. ?workers=2)");
      answer_on_pool(ex, [model, workers] {
        model->batcher->set_workers(*workers);
        return Reply{200, model_json(*model).dump()};
      });
      return;
    }
    default:
      http_fail(405, "validation", "use GET, PUT or DELETE on /models/{{name}}");
  }
}

Server::Server(ServerConfig config, ModelRegistry& models, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), models, metrics)) {}

Server::~Server() { stop(); }

void Server::start() {
  Impl& s = *impl_;
  if (s.started) fail("serve: the server is already started");
  s.started = true;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  s.pool = std::make_unique<asio::thread_pool>(
      s.config.request_threads > 0 ? s.config.request_threads : cores);
  s.listener = std::make_shared<Listener>(s, s.config.host, s.config.port, false);
  if (s.config.management_port >= 0)
    s.management = std::make_shared<Listener>(s, s.config.management_host,
                                              s.config.management_port, true);
  s.work.emplace(s.ioc.get_executor());
  s.listener->accept();
  if (s.management) s.management->accept();
  for (int i = 0; i < std::max(1, s.config.io_threads); ++i)
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

int Server::port() const { return impl_->listener ? impl_->listener->port() : -1; }

int Server::management_port() const {
  return impl_->management ? impl_->management->port() : -1;
}

void Server::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped.exchange(true)) return;
  s.draining = true;
  if (s.listener) s.listener->close();
  if (s.management) s.management->close();
  {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(s.sessions_mutex);
      for (auto& [p, w] : s.sessions)
        if (auto session = w.lock()) live.push_back(session);
    }
    for (auto& session : live) session->drain();
  }
  {
    std::unique_lock lock(s.sessions_mutex);
    if (!s.sessions_cv.wait_for(lock, s.config.drain_timeout, [&] { return s.sessions.empty(); }))
      spdlog::warn("serve: {} connections still open after {} ms; closing", s.sessions.size(),
                   s.config.drain_timeout.count());
  }
  s.pool->join();
  s.models.stop_all();
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
}

}  // namespace tuneserve::serve
