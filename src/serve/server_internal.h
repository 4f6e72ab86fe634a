// Internal to the server (server.cpp: transport and the route table; handlers.cpp: what each route
// does): the reply and exchange types, error replies, and Server::Impl. Not a public header.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "serve/server.h"

namespace tuneserve::serve {

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

inline Reply error_reply(int status, std::string_view type, std::string_view message) {
  Reply reply(status, error_body(message, type));
  // Overload and not-ready are temporary: tell clients when to come back.
  if (status == 503) reply.headers.emplace_back("Retry-After", "1");
  return reply;
}

inline Reply error_reply(const HttpError& e) { return error_reply(e.status, e.type, e.what()); }

// Who is at fault for a tuneserve::Error: request handling blames the input (400); once a job has
// reached the model, a failure is the server's (500 "backend").
enum class Blame { Request, Backend };

// The reply for the exception being handled (call only inside a catch block): an HttpError keeps
// its status; tuneserve::Error as `blame` says; anything else is a 500.
inline Reply current_exception_reply(Blame blame) {
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

inline std::string header(const Request& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string() : std::string(it->value());
}

// URL pieces: "/a/b%20c" -> {"a", "b c"}; "k=v&x" -> {k: v, x: ""} (percent-decoded).
std::vector<std::string> split_path(std::string_view path);
std::map<std::string, std::string> query_of(std::string_view query);

class Session;
class Listener;

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
  // Sessions over max_connections that may only ask for /ping or /health (counted in `sessions`).
  std::atomic<std::size_t> health_sessions{0};
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
  std::size_t session_count();  // not counting health-check sessions

  bool finish(Exchange& ex, Reply reply);
  void timeout(Exchange& ex);
  void handle(Request& req, const std::shared_ptr<Exchange>& ex, bool management_port);
  void route(Request& req, const std::shared_ptr<Exchange>& ex);
  // Handlers (handlers.cpp). `parts`: the request path's segments.
  void health(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void metrics_page(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void info_page(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void tokenize_route(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void inference_api(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void invocations(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
  void endpoint_invocations(Request& req, const std::shared_ptr<Exchange>& ex,
                            const std::vector<std::string>& parts);
  void predictions(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>& parts);
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

}  // namespace tuneserve::serve
