// The AWS credential chain (see credentials.h).
#include "aws/credentials.h"

#include <fstream>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/json.h"
#include "hub/cache.h"
#include "net/http.h"

namespace tuneserve::aws {
namespace {

using hub::env;
using Section = std::map<std::string, std::string>;

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// INI as the AWS CLI writes it: "[name]" sections of "key = value" lines, '#' and ';' comments.
std::optional<Section> ini_section(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::optional<Section> found;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      inside = trim(line.substr(1, line.size() - 2)) == name;
      if (inside && !found) found.emplace();
      continue;
    }
    const auto eq = line.find('=');
    if (inside && eq != std::string::npos) (*found)[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return found;
}

std::string home_file(const char* var, const char* fallback) {
  if (std::string p = env(var); !p.empty()) return p;
  return env("HOME") + fallback;
}

std::optional<SigV4Credentials> from_section(const std::optional<Section>& s) {
  if (!s || !s->count("aws_access_key_id") || !s->count("aws_secret_access_key")) return std::nullopt;
  SigV4Credentials c{s->at("aws_access_key_id"), s->at("aws_secret_access_key")};
  if (s->count("aws_session_token")) c.session_token = s->at("aws_session_token");
  return c;
}

// The container credentials endpoint: {"AccessKeyId", "SecretAccessKey", "Token", ...}.
std::optional<SigV4Credentials> from_container(std::string* source) {
  std::string url = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (url.empty() && !env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty())
    url = "http://169.254.170.2" + env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (url.empty()) return std::nullopt;
  net::HttpRequest r;
  r.url = url;
  r.connect_timeout_s = 2;
  r.stall_timeout_s = 5;
  if (std::string token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN"); !token.empty()) r.headers.emplace_back("Authorization", token);
  const net::HttpResponse resp = net::with_retries("container credentials " + url, {3}, [&] { return net::http_request(r, nullptr, nullptr, 1 << 20); });
  if (!resp.ok()) fail("container credentials {}: HTTP {}", url, resp.status);
  const nlohmann::json j = parse_json(resp.body, "container credentials " + url);
  for (const char* k : {"AccessKeyId", "SecretAccessKey"})
    if (!j.contains(k) || !j[k].is_string()) fail("container credentials {}: no {} in the answer", url, k);
  *source = "container credentials " + url;
  SigV4Credentials c{j["AccessKeyId"].get<std::string>(), j["SecretAccessKey"].get<std::string>()};
  if (j.contains("Token") && j["Token"].is_string()) c.session_token = j["Token"].get<std::string>();
  return c;
}

}  // namespace

AwsSettings AwsSettings::from_env() {
  AwsSettings s;
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = env("AWS_DEFAULT_PROFILE");
  if (profile.empty()) profile = "default";
  const std::string credentials_file = home_file("AWS_SHARED_CREDENTIALS_FILE", "/.aws/credentials");
  const std::string config_file = home_file("AWS_CONFIG_FILE", "/.aws/config");
  const auto config = ini_section(config_file, profile == "default" ? "default" : "profile " + profile);

  if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    s.credentials = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
    s.credentials_source = "AWS_ACCESS_KEY_ID";
  } else if (auto c = from_section(ini_section(credentials_file, profile))) {
    s.credentials = *c;
    s.credentials_source = credentials_file + " [" + profile + "]";
  } else if (auto c2 = from_section(config)) {
    s.credentials = *c2;
    s.credentials_source = config_file + " [" + profile + "]";
  } else if (auto c3 = from_container(&s.credentials_source)) {
    s.credentials = *c3;
  } else {
    fail("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile {} in {} or {} "
         "(AWS_PROFILE picks the profile)",
         profile, credentials_file, config_file);
  }

  if (std::string r = env("AWS_REGION"); !r.empty()) {
    s.region = r;
  } else if (std::string r2 = env("AWS_DEFAULT_REGION"); !r2.empty()) {
    s.region = r2;
  } else if (config && config->count("region")) {
    s.region = config->at("region");
  }
  s.endpoint = env("AWS_ENDPOINT_URL_S3");
  if (s.endpoint.empty()) s.endpoint = env("AWS_ENDPOINT_URL");
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  return s;
}

}  // namespace tuneserve::aws
