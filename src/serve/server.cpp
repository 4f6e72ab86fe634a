// The HTTP endpoint on Boost.Beast (see server.h): transport and the route table. One Session per
// connection, each on its own strand: read a header (idle/slowloris deadline), refuse an over-large
// body before reading it, read the body, hand the request to the route table, watch the socket for
// the client leaving while the answer is computed, write the answer, repeat (keep-alive). What each
// route does is in handlers.cpp: cheap routes answer at once, inference goes to the request pool
// (decode + tokenize) and the model's batcher.
#include "serve/server.h"

#include <boost/version.hpp>

#include <cmath>

#include <spdlog/spdlog.h>

#include "core/cpus.h"
#include "core/json.h"
#include "core/log.h"
#include "serve/server_internal.h"

static_assert(BOOST_VERSION >= 108100, "tuneserve's server is written against Boost 1.81 headers");

namespace tuneserve::serve {
namespace {

// A 413 for the body's size says how to raise the limit.
constexpr const char* kRaisePayloadLimit =
    " (raise it with --max-payload-mb, SAGEMAKER_MAX_PAYLOAD_IN_MB or SAGEMAKER_MAX_REQUEST_SIZE)";

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

// Over the connection limit, this many connections at once may still ask for /ping or /health,
// and each has this long to send its header.
constexpr std::size_t kHealthSessions = 16;
constexpr std::chrono::milliseconds kHealthHeaderTimeout{2000};

bool is_health_check(const http::request_header<>& req) {
  if (req.method() != http::verb::get && req.method() != http::verb::head) return false;
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  return path == "/ping" || path == "/health";
}

}  // namespace

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  // health_only: a connection over max_connections, kept only long enough to answer /ping or
  // /health (load balancers must still see a healthy server when it is busy) or say 503.
  Session(tcp::socket&& socket, Server::Impl& server, bool management, bool health_only = false)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server),
        management_(management), health_only_(health_only) {
    if (health_only_) ++server_.health_sessions;
  }
  ~Session() {
    if (health_only_) --server_.health_sessions;
    server_.remove_session(this);
  }

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
    stream_.expires_after(health_only_ ? std::min(config().idle_timeout, kHealthHeaderTimeout)
                                       : config().idle_timeout);
    http::async_read_header(stream_, buffer_, *header_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    // What the access log line and the X-Request-Id header say about this request.
    // A Content-Length over the limit stops the parser at that field: the request line and the
    // fields before it are known (the log shows them; nothing else reads them).
    const bool header = !ec || ec == http::error::body_limit;
    started_ = Clock::now();
    method_ = header ? std::string(header_->get().method_string()) : "-";
    target_ = header ? std::string(header_->get().target().substr(0, 256)) : "-";
    const auto client_id = header_->get()["X-Request-Id"];
    request_id_ = request_id(header ? std::string_view(client_id.data(), client_id.size()) : std::string_view());
    if (ec) {
      if (ec == http::error::body_limit)  // Content-Length over the limit, seen in the header
        return reply_and_close(413, "payload_too_large",
                               fmt::format("the body is over the limit of {} bytes{}",
                                           config().max_payload_bytes, kRaisePayloadLimit));
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
    if (health_only_ && !is_health_check(header_->get()))
      return reply_and_close(503, "overloaded", "too many open connections; retry later");
    const auto length = header_->content_length();
    if (length && *length > config().max_payload_bytes)
      return reply_and_close(413, "payload_too_large",
                             fmt::format("the body is {} bytes, over the limit of {} bytes{}",
                                         *length, config().max_payload_bytes, kRaisePayloadLimit));
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
                             fmt::format("the body is over the limit of {} bytes{}",
                                         config().max_payload_bytes, kRaisePayloadLimit));
    if (ec) return close();
    request_ = body_->release();
    body_.reset();
    stream_.expires_never();
    state_ = State::waiting;
    keep_alive_ = request_.keep_alive() && !health_only_;

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
    if (request_id_.empty()) request_id_ = request_id({});
    res->set("X-Request-Id", request_id_);
    res->body() = std::move(reply.body);
    res->keep_alive(keep_alive_ && !server_.draining);
    res->prepare_payload();
    state_ = State::writing;
    stream_.expires_after(config().read_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        self->log_access(res->result_int(), res->body().size(), ec);
                        self->on_write(ec, res->keep_alive());
                      });
  }

  // One access-log record per answered request (core/log.h), after its answer is written.
  void log_access(unsigned status, std::size_t bytes, beast::error_code ec) {
    const double ms =
        started_ == Clock::time_point{} ? 0.0 : std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
    nlohmann::ordered_json fields = {{"method", method_}, {"path", target_}, {"status", status}, {"bytes", bytes},
                                     {"ms", std::round(ms * 100) / 100}, {"request_id", request_id_}};
    if (ec) fields["write_error"] = ec.message();
    logging::access(fields, fmt::format("{} {} {} {} B {:.2f} ms {}{}", method_, target_, status, bytes, ms,
                                        request_id_, ec ? " (write failed: " + ec.message() + ")" : ""));
    request_id_.clear();
    method_ = target_ = "-";
    started_ = {};
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
  bool health_only_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_;
  std::optional<http::request_parser<http::string_body>> body_;
  Request request_;
  std::string request_id_, method_ = "-", target_ = "-";
  Clock::time_point started_{};
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
        if (!management_ && server_.health_sessions.load() < kHealthSessions)
          std::make_shared<Session>(std::move(socket), server_, management_, true)->start();
        else
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
  return sessions.size() - health_sessions.load();
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

namespace {

// The main port's routes: path segments ("*" matches one segment), the method, whether the
// API key is checked, the metrics label and the handler (handlers.cpp).
struct Route {
  std::vector<std::string_view> pattern;
  http::verb method;  // GET also answers HEAD
  bool authenticated;
  const char* name;
  void (Server::Impl::*handle)(Request&, const std::shared_ptr<Exchange>&, const std::vector<std::string>&);
};

const std::vector<Route>& routes() {
  using I = Server::Impl;
  static const std::vector<Route> table = {
      {{"ping"}, http::verb::get, false, "/ping", &I::health},
      {{"health"}, http::verb::get, false, "/health", &I::health},
      {{"metrics"}, http::verb::get, true, "/metrics", &I::metrics_page},
      {{"info"}, http::verb::get, true, "/info", &I::info_page},
      {{"tokenize"}, http::verb::post, true, "/tokenize", &I::tokenize_route},
      {{}, http::verb::post, true, "/", &I::inference_api},
      {{"invocations"}, http::verb::post, true, "/invocations", &I::invocations},
      {{"predict"}, http::verb::post, true, "/predict", &I::invocations},
      {{"endpoints", "*", "invocations"}, http::verb::post, true, "/endpoints/{name}/invocations",
       &I::endpoint_invocations},
      {{"predictions", "*"}, http::verb::post, true, "/predictions/{model}", &I::predictions},
      {{"models", "*"}, http::verb::post, true, "/predictions/{model}", &I::predictions},
  };
  return table;
}

const Route* find_route(const std::vector<std::string>& parts) {
  for (const Route& r : routes()) {
    if (r.pattern.size() != parts.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < parts.size() && match; ++i) match = r.pattern[i] == "*" || r.pattern[i] == parts[i];
    if (match) return &r;
  }
  return nullptr;
}

}  // namespace

void Server::Impl::route(Request& req, const std::shared_ptr<Exchange>& ex) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const auto parts = split_path(path);
  const Route* r = find_route(parts);
  if (!r || r->authenticated) check_auth(req);  // an unknown path is not told apart from a known one before
  if (!r) http_fail(404, "not_found", "no route for {} {}", std::string(req.method_string()), text_excerpt(path));
  ex->route = r->name;
  const bool get = r->method == http::verb::get;
  if (!(req.method() == r->method || (get && req.method() == http::verb::head)))
    http_fail(405, "validation", "{} is not allowed on {}; use {}", std::string(req.method_string()),
              text_excerpt(path), get ? "GET" : "POST");
  (this->*(r->handle))(req, ex, parts);
}

Server::Server(ServerConfig config, ModelRegistry& models, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), models, metrics)) {}

Server::~Server() { stop(); }

void Server::start() {
  Impl& s = *impl_;
  if (s.started) fail("serve: the server is already started");
  s.started = true;
  const int cores = available_cpus();
  s.pool = std::make_unique<asio::thread_pool>(
      static_cast<std::size_t>(s.config.request_threads > 0 ? s.config.request_threads : cores));
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
