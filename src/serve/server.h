// The HTTP endpoint: Boost.Beast HTTP/1.1 with keep-alive on a few I/O threads, the SageMaker
// and Hugging Face routes, metrics, and an optional management port. I/O threads only parse
// headers and route; decoding and tokenization run on a request pool, the model on the batchers.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "serve/batcher.h"
#include "serve/handler_plugin.h"
#include "serve/metrics.h"
#include "serve/model_registry.h"
#include "aws/sigv4.h"
#include "serve/request.h"

namespace tuneserve::serve {

// The server checks SigV4 with the one implementation the S3 client signs with (aws/sigv4.h).
using aws::constant_time_equal;
using aws::is_sigv4;
using aws::parse_sigv4_credentials;
using aws::SignedRequest;
using aws::sigv4_verify;
using aws::SigV4Credentials;

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 8080;                   // 0: an ephemeral port (see Server::port())
  int management_port = -1;          // -1: no management API; 0: ephemeral
  std::string management_host = "127.0.0.1";
  std::string model_store;           // management loads only from directories inside it
  int io_threads = 2;
  int request_threads = 0;           // decode + tokenize pool; 0: one per core
  std::size_t max_payload_bytes = 6 * 1024 * 1024;  // SageMaker's 6 MB
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_connections = 1024;
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive wait + reading a header
  std::chrono::milliseconds read_timeout{30'000};     // reading a body
  std::chrono::milliseconds response_timeout{60'000}; // admitted -> answered, else 504
  std::chrono::milliseconds drain_timeout{30'000};    // SIGTERM: longest wait for in-flight work
  std::string api_key;               // non-empty: inference and management need Bearer <key>
  SigV4Credentials sigv4;            // non-empty: AWS SigV4-signed requests with these credentials pass
  RequestLimits limits;
  Format default_accept = Format::json;  // what an absent Accept or */* gets (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)
  std::shared_ptr<HandlerPlugin> handler;  // --handler lib.so; null: the built-in pipeline
  Loader loader;                     // builds backends for the management API's load
};

class Server {
 public:
  Server(ServerConfig config, ModelRegistry& models, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();  // binds and starts the I/O threads; fails (Error) if a port is taken
  int port() const;
  int management_port() const;  // -1 when off
  // Stops accepting, closes idle connections, lets in-flight requests finish (up to
  // drain_timeout), then stops every thread. Safe to call twice.
  void stop();

  struct Impl;  // internal (server.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneserve::serve
