// The Hugging Face Hub client against a local server in the Hub's URL layout (hub_server.py):
// the cache layout huggingface_hub defines, .no_exist, refs, locks, resumable downloads, sha256
// checks, errors for 401/404/offline; the cache cross-checked both ways with @huggingface/hub's
// downloadFileToCacheDir; and the issue's end-to-end run: train from Hub ids, then again offline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "background_process.h"
#include "hub/cache.h"
#include "hub/hub.h"
#include "hub/repo_files.h"
#include "serve/http_client.h"
#include "test_util.h"

namespace tuneserve::hub {
namespace {

using ::testing::HasSubstr;
using tuneserve::testing::BackgroundProcess;
using tuneserve::testing::error_of;
using tuneserve::testing::run_command;
using tuneserve::testing::shared_path;

const std::string kTiny = "models/distilbert-tiny-init";
const std::string kMini = "models/distilbert-mini-mlm";
const std::string kTok = "tokenizers/bert-base-cased";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string digest_hex(const EVP_MD* md, const std::string& data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, md, nullptr);
  std::string out;
  for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", d[i]);
  return out;
}
std::string sha256_hex(const std::string& data) { return digest_hex(EVP_sha256(), data); }
std::string git_blob_sha1(const std::string& data) {
  return digest_hex(EVP_sha1(), "blob " + std::to_string(data.size()) + std::string(1, '\0') + data);
}
std::string commit_of_repo(const std::string& repo) { return digest_hex(EVP_sha1(), "commit " + repo); }

void link_all(const fs::path& from_dir, const fs::path& to_dir, const std::set<std::string>& skip = {}) {
  fs::create_directories(to_dir);
  for (const auto& e : fs::directory_iterator(from_dir))
    if (!skip.count(e.path().filename().string())) fs::create_symlink(fs::absolute(e.path()), to_dir / e.path().filename());
}

// One server for the suite, over a root holding:
//   distilbert-base-cased   distilbert-mini-mlm's weights + the bert-base-cased tokenizer (as on the Hub)
//   acme/tiny               distilbert-tiny-init + tokenizer.json only (no special_tokens_map.json); tag v1
//   acme/private            the same, private (token hf_secret)
//   acme/old-name           moved to acme/tiny (a relative redirect)
class HubTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(shared_path(kMini)) || !fs::exists(shared_path(kTiny)) || !fs::exists(shared_path(kTok))) return;
    root_ = fs::temp_directory_path() / fmt::format("tuneserve-hub-test-{}", ::getpid());
    fs::remove_all(root_);
    link_all(shared_path(kMini), root_ / "repos/distilbert-base-cased");
    link_all(shared_path(kTok), root_ / "repos/distilbert-base-cased");
    for (const char* repo : {"acme/tiny", "acme/private"}) {
      link_all(shared_path(kTiny), root_ / "repos" / repo);
      fs::create_symlink(fs::absolute(shared_path(kTok + "/tokenizer.json")), root_ / "repos" / repo / "tokenizer.json");
    }
    std::ofstream(root_ / "repos/acme/tiny/.hub.json") << R"({"tags": ["v1"]})";
    std::ofstream(root_ / "repos/acme/private/.hub.json") << R"({"private": true, "token": "hf_secret"})";
    fs::create_directories(root_ / "repos/acme/old-name");
    std::ofstream(root_ / "repos/acme/old-name/.hub.json") << R"({"moved_to": "acme/tiny"})";
    server_ = start_server("");
  }
  static void TearDownTestSuite() {
    server_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  struct Server {
    std::unique_ptr<BackgroundProcess> process;
    std::string endpoint, log;
  };
  static std::shared_ptr<Server> start_server(const std::string& extra) {
    auto s = std::make_shared<Server>();
    static int count = 0;
    const std::string name = fmt::format("server{}", count++);
    s->log = (root_ / (name + ".requests")).string();
    s->process = std::make_unique<BackgroundProcess>(
        fmt::format("python3 {}/tests/hub/hub_server.py --root {} --log {} {}", TUNESERVE_SOURCE_DIR,
                    (root_ / "repos").string(), s->log, extra),
        (root_ / (name + ".out")).string());
    const auto port = s->process->wait_for_line("port (\\d+)", std::chrono::seconds(20));
    if (!port) return nullptr;
    s->endpoint = "http://127.0.0.1:" + *port;
    return s;
  }

  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED(kMini);
    TUNESERVE_REQUIRE_SHARED(kTiny);
    if (!server_) GTEST_SKIP() << "the local Hub server (python3 tests/hub/hub_server.py) did not start";
    cache_ = root_ / fmt::format("cache-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(cache_);
  }

  HubSettings settings(const Server& s) const {
    HubSettings h;
    h.endpoint = s.endpoint;
    h.cache_dir = cache_.string();
    h.progress = false;
    h.retry.base = std::chrono::milliseconds(10);
    return h;
  }
  HubSettings settings() const { return settings(*server_); }
  static std::string requests(const Server& s) { return read_file(s.log); }
  static std::size_t count_lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

  static inline fs::path root_;
  static inline std::shared_ptr<Server> server_;
  fs::path cache_;
};

TEST(HubCacheLayout, RepoIdsFileNamesAndFolders) {
  EXPECT_TRUE(is_repo_id("distilbert-base-cased"));
  EXPECT_TRUE(is_repo_id("org/name.v2_x"));
  for (const char* bad : {"", "a/b/c", "../x", "/abs", "a--b", "org/..", "-x", "x.", "a b", "./dir"})
    EXPECT_FALSE(is_repo_id(bad)) << bad;
  EXPECT_EQ(RepoCache("/c", "org/name").root(), fs::path("/c/models--org--name"));
  EXPECT_EQ(RepoCache("/c", "org/name").lock("e"), fs::path("/c/.locks/models--org--name/e.lock"));
  for (const char* bad : {"../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a\\b", ""})
    EXPECT_THAT(error_of([&] { check_repo_filename(bad, "index.json"); }), HasSubstr("index.json: file name")) << bad;
  check_repo_filename("sub/dir/model-00001-of-00002.safetensors", "x");
}

TEST_F(HubTest, DownloadsIntoHuggingFaceHubCacheLayout) {
  const HubClient hub(settings());
  const std::string dir = fetch_model(hub, "acme/tiny", "main");
  fetch_tokenizer(hub, "acme/tiny", "main");
  const std::string commit = commit_of_repo("acme/tiny");
  const fs::path repo = cache_ / "models--acme--tiny";
  EXPECT_EQ(fs::path(dir), repo / "snapshots" / commit);
  EXPECT_EQ(read_file(repo / "refs/main"), commit);  // no newline, as huggingface_hub writes it
  for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
    const fs::path link = repo / "snapshots" / commit / name;
    ASSERT_TRUE(fs::is_symlink(link)) << link;
    const std::string source = read_file(fs::path(TUNESERVE_SHARED_DIR) / (std::string(name) == "tokenizer.json" ? kTok : kTiny) / name);
    // LFS files are named by their sha256, the others by their git blob sha1; links are relative.
    const std::string etag = std::string(name) == "model.safetensors" ? sha256_hex(source) : git_blob_sha1(source);
    EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs") / etag);
    EXPECT_EQ(read_file(link), source);
  }
  // Optional files the repo lacks are remembered, and the weights' alternatives are never asked for.
  EXPECT_TRUE(fs::exists(repo / ".no_exist" / commit / "special_tokens_map.json"));
  EXPECT_FALSE(fs::exists(repo / ".no_exist" / commit / "pytorch_model.bin"));
  EXPECT_THAT(requests(*server_), ::testing::Not(HasSubstr("acme/tiny/resolve/main/pytorch_model.bin")));
  for (const auto& e : fs::recursive_directory_iterator(repo))
    EXPECT_FALSE(e.path().string().ends_with(".incomplete")) << e.path();
}

TEST_F(HubTest, CachedFilesNeedNoDownloadAndOfflineNoRequest) {
  const HubClient hub(settings());
  fetch_model(hub, "acme/tiny", "main");
  const std::string before = requests(*server_);
  fetch_model(hub, "acme/tiny", "main");  // online: HEAD requests only, as huggingface_hub does
  const std::string again = requests(*server_).substr(before.size());
  EXPECT_THAT(again, HasSubstr("HEAD /acme/tiny/resolve/main/config.json"));
  EXPECT_THAT(again, ::testing::Not(HasSubstr("GET ")));

  HubSettings offline = settings();
  offline.offline = true;
  const std::string mark = requests(*server_);
  EXPECT_THAT(fetch_model(HubClient(offline), "acme/tiny", "main"), HasSubstr(commit_of_repo("acme/tiny")));
  // A commit hash as the revision, fully cached: no request either, even online.
  fetch_model(hub, "acme/tiny", commit_of_repo("acme/tiny"));
  EXPECT_EQ(requests(*server_), mark);
}

TEST_F(HubTest, TagsAndRenamedRepos) {
  const HubClient hub(settings());
  EXPECT_THAT(fetch_model(hub, "acme/tiny", "v1"), HasSubstr(commit_of_repo("acme/tiny")));
  EXPECT_EQ(read_file(cache_ / "models--acme--tiny/refs/v1"), commit_of_repo("acme/tiny"));
  // The Hub answers a renamed repo with a relative redirect; the files land under the asked name.
  EXPECT_THAT(*hub.file("acme/old-name", "config.json", "main", true), HasSubstr("models--acme--old-name/snapshots"));
}

TEST_F(HubTest, ErrorsNameRepoRevisionAndFile) {
  const HubClient hub(settings());
  EXPECT_THAT(error_of([&] { fetch_model(hub, "acme/nothing-here", "main"); }),
              ::testing::AllOf(HasSubstr("acme/nothing-here: config.json at revision main"), HasSubstr("404"),
                               HasSubstr("repository acme/nothing-here not found")));
  EXPECT_THAT(error_of([&] { hub.file("acme/tiny", "weights.pt", "main", true); }),
              ::testing::AllOf(HasSubstr("acme/tiny: weights.pt at revision main"), HasSubstr("404")));
  EXPECT_THAT(error_of([&] { fetch_model(hub, "acme/tiny", "v9"); }), HasSubstr("revision v9 not found in acme/tiny"));
  EXPECT_FALSE(hub.file("acme/tiny", "weights.pt", "main", false).has_value());
  EXPECT_TRUE(fs::exists(cache_ / "models--acme--tiny/.no_exist" / commit_of_repo("acme/tiny") / "weights.pt"));
  // Known absent: asked again offline, the cached answer says so.
  HubSettings offline = settings();
  offline.offline = true;
  EXPECT_THAT(error_of([&] { HubClient(offline).file("acme/tiny", "weights.pt", "main", true); }),
              HasSubstr("no such file (cached answer"));
}

TEST_F(HubTest, PrivateReposNeedTheToken) {
  EXPECT_THAT(error_of([&] { fetch_model(HubClient(settings()), "acme/private", "main"); }),
              ::testing::AllOf(HasSubstr("acme/private: config.json at revision main"), HasSubstr("401"),
                               HasSubstr("set HF_TOKEN")));
  HubSettings wrong = settings();
  wrong.token = "hf_wrong";
  wrong.token_source = "HF_TOKEN";
  EXPECT_THAT(error_of([&] { fetch_model(HubClient(wrong), "acme/private", "main"); }),
              HasSubstr("the token from HF_TOKEN cannot read this repository"));
  HubSettings right = settings();
  right.token = "hf_secret";
  EXPECT_NO_THROW(fetch_model(HubClient(right), "acme/private", "main"));
}

TEST_F(HubTest, SettingsFromTheEnvironmentAndTheTokenFile) {
  const fs::path home = root_ / "hf-home";
  fs::create_directories(home);
  std::ofstream(home / "token") << "hf_from_file\n";
  ::setenv("HF_HOME", home.c_str(), 1);
  ::unsetenv("HF_HUB_CACHE");
  ::unsetenv("HF_TOKEN");
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  ::setenv("HF_ENDPOINT", "http://mirror.example/", 1);
  const HubSettings s = HubSettings::from_env();
  EXPECT_EQ(s.cache_dir, (home / "hub").string());
  EXPECT_EQ(s.token, "hf_from_file");
  EXPECT_EQ(s.token_source, (home / "token").string());
  EXPECT_TRUE(s.offline);
  EXPECT_EQ(s.endpoint, "http://mirror.example");
  ::setenv("HF_TOKEN", "hf_env", 1);
  ::setenv("HF_HUB_CACHE", "/elsewhere", 1);
  EXPECT_EQ(HubSettings::from_env().token, "hf_env");
  EXPECT_EQ(HubSettings::from_env().cache_dir, "/elsewhere");
  for (const char* v : {"HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE"}) ::unsetenv(v);
}

TEST_F(HubTest, OfflineWithAnEmptyCacheNamesTheVariableAndTheCache) {
  HubSettings offline = settings();
  offline.offline = true;
  EXPECT_THAT(error_of([&] { fetch_model(HubClient(offline), "acme/tiny", "main"); }),
              ::testing::AllOf(HasSubstr("HF_HUB_OFFLINE"), HasSubstr(cache_.string())));
  // The Hub unreachable (nothing listens): the same, naming the endpoint.
  HubSettings down = settings();
  down.endpoint = "http://127.0.0.1:" + std::to_string(tuneserve::testing::free_port());
  down.retry.attempts = 2;
  EXPECT_THAT(error_of([&] { fetch_model(HubClient(down), "acme/tiny", "main"); }),
              ::testing::AllOf(HasSubstr("cannot be reached"), HasSubstr(cache_.string())));
  // ... and with the files cached, they are used.
  fetch_model(HubClient(settings()), "acme/tiny", "main");
  EXPECT_NO_THROW(fetch_model(HubClient(down), "acme/tiny", "main"));
}

TEST_F(HubTest, InterruptedDownloadsResumeAndNeverReachTheSnapshot) {
  // This server drops the connection after 1 MB of each blob's first transfer.
  const auto cutting = start_server("--cut-after 1000000");
  ASSERT_TRUE(cutting);
  HubSettings once = settings(*cutting);
  once.retry.attempts = 1;
  const std::string commit = commit_of_repo("acme/tiny");
  const fs::path repo = cache_ / "models--acme--tiny";
  EXPECT_THAT(error_of([&] { HubClient(once).file("acme/tiny", "model.safetensors", "main", true); }),
              HasSubstr("run again to resume"));
  EXPECT_FALSE(fs::exists(repo / "snapshots" / commit / "model.safetensors"));
  const std::string source = read_file(shared_path(kTiny + "/model.safetensors"));
  const fs::path partial = repo / "blobs" / (sha256_hex(source) + ".incomplete");
  ASSERT_TRUE(fs::exists(partial));
  EXPECT_EQ(fs::file_size(partial), 1000000u);
  // The next run asks for the rest only.
  const auto path = HubClient(settings(*cutting)).file("acme/tiny", "model.safetensors", "main", true);
  EXPECT_EQ(read_file(*path), source);
  EXPECT_THAT(requests(*cutting), HasSubstr("bytes=1000000-"));
  EXPECT_FALSE(fs::exists(partial));
  // Within one run, retries resume too.
  fs::remove_all(cache_);
  const auto cutting2 = start_server("--cut-after 500000");
  ASSERT_TRUE(cutting2);
  EXPECT_EQ(read_file(*HubClient(settings(*cutting2)).file("acme/tiny", "model.safetensors", "main", true)), source);
  EXPECT_THAT(requests(*cutting2), HasSubstr("bytes=500000-"));
}

TEST_F(HubTest, CorruptDownloadsAreRefusedBySha256) {
  const std::string source = read_file(shared_path(kTiny + "/model.safetensors"));
  const fs::path blob = cache_ / "models--acme--tiny/blobs" / sha256_hex(source);
  fs::create_directories(blob.parent_path());
  // A partial file of the right size but wrong bytes (a disk error, a tampered mirror).
  std::ofstream(blob.string() + ".incomplete", std::ios::binary) << std::string(source.size(), 'x');
  EXPECT_THAT(error_of([&] { HubClient(settings()).file("acme/tiny", "model.safetensors", "main", true); }),
              HasSubstr("sha256 of the download is"));
  EXPECT_FALSE(fs::exists(blob.string() + ".incomplete"));
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_EQ(read_file(*HubClient(settings()).file("acme/tiny", "model.safetensors", "main", true)), source);
}

TEST_F(HubTest, TheBlobLockIsHonoured) {
  const std::string source = read_file(shared_path(kTiny + "/config.json"));
  const std::string etag = git_blob_sha1(source);
  const RepoCache cache(cache_, "acme/tiny");
  std::atomic<bool> done = false;
  std::optional<std::string> got;
  std::thread t;
  {
    const FileLock held(cache.lock(etag));  // as another process (Python's filelock) would hold it
    t = std::thread([&] {
      got = HubClient(settings()).file("acme/tiny", "config.json", "main", true);
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_FALSE(done);
    EXPECT_FALSE(fs::exists(cache.blob(etag)));
  }
  t.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(read_file(*got), source);
  // Concurrent downloads of the same files all succeed with whole files.
  fs::remove_all(cache_);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(3);
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] { errors[i] = error_of([&] { fetch_model(HubClient(settings()), "acme/tiny", "main"); }); });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "(no error)");
  EXPECT_EQ(read_file(cache_ / "models--acme--tiny/snapshots" / commit_of_repo("acme/tiny") / "model.safetensors"),
            read_file(shared_path(kTiny + "/model.safetensors")));
}

// @huggingface/hub (npm, independent of this code) against the same server and cache.
class HubJsTest : public HubTest {
 protected:
  void SetUp() override {
    HubTest::SetUp();
    if (IsSkipped()) return;
    node_path_ = std::string(TUNESERVE_SOURCE_DIR) + "/third_party/npm/node_modules";
    std::string out;
    if (run_command("command -v node", out) != 0) GTEST_SKIP() << "node missing (Debian nodejs)";
    if (!fs::exists(node_path_ + "/@huggingface/hub/package.json"))
      GTEST_SKIP() << "@huggingface/hub missing: scripts/setup.sh installs it into third_party/npm";
  }
  // Runs downloadFileToCacheDir for `files`; returns the snapshot paths it gave.
  std::vector<std::string> js_download(const std::string& revision, const std::vector<std::string>& files) {
    std::string cmd = fmt::format("NODE_PATH={} node {}/tests/hub/js/download_to_cache.mjs {} {} acme/tiny {}", node_path_,
                                  TUNESERVE_SOURCE_DIR, server_->endpoint, cache_.string(), revision);
    for (const auto& f : files) cmd += " " + f;
    std::string out;
    EXPECT_EQ(run_command(cmd, out), 0) << out;
    const std::size_t at = out.rfind("{\"paths\"");
    if (at == std::string::npos) return {};
    return nlohmann::json::parse(out.substr(at))["paths"].get<std::vector<std::string>>();
  }
  std::string node_path_;
};

TEST_F(HubJsTest, TuneserveReadsTheJsClientsCacheOffline) {
  const std::string commit = commit_of_repo("acme/tiny");
  const auto paths = js_download(commit, {"config.json", "model.safetensors", "tokenizer.json"});
  ASSERT_EQ(paths.size(), 3u);
  HubSettings offline = settings();
  offline.offline = true;
  const HubClient hub(offline);
  // The JS client writes no refs/, so the commit names the revision, as huggingface_hub needs too.
  EXPECT_EQ(*hub.file("acme/tiny", "model.safetensors", commit, true), paths[1]);
  const std::string dir = fetch_model(hub, "acme/tiny", commit);
  std::string out;
  ASSERT_EQ(run_command(fmt::format("HF_HUB_OFFLINE=1 HF_HUB_CACHE={} {} predict --model acme/tiny --revision {} 'I love it'",
                                    cache_.string(), TUNESERVE_BINARY, commit),
                        out),
            0)
      << out;
  std::string reference;
  ASSERT_EQ(run_command(fmt::format("{} predict --model {} --tokenizer {} 'I love it' 2>/dev/null", TUNESERVE_BINARY,
                                    shared_path(kTiny), shared_path(kTok)),
                        reference),
            0);
  EXPECT_THAT(out, HasSubstr(reference.substr(0, reference.size() - 1)));
}

TEST_F(HubJsTest, TheJsClientReadsTuneservesCacheWithoutADownload) {
  const HubClient hub(settings());
  fetch_model(hub, "acme/tiny", "main");
  fetch_tokenizer(hub, "acme/tiny", "main");
  const std::string before = requests(*server_);
  const auto paths = js_download("main", {"config.json", "model.safetensors", "tokenizer.json"});
  const std::string asked = requests(*server_).substr(before.size());
  ASSERT_EQ(paths.size(), 3u);
  const std::string snapshot = (cache_ / "models--acme--tiny/snapshots" / commit_of_repo("acme/tiny")).string();
  EXPECT_EQ(paths[0], snapshot + "/config.json");
  EXPECT_EQ(paths[1], snapshot + "/model.safetensors");
  // It asked which commit and blob (paths-info) and downloaded nothing.
  EXPECT_THAT(asked, HasSubstr("POST /api/models/acme/tiny/paths-info/main"));
  EXPECT_THAT(asked, ::testing::Not(HasSubstr("GET ")));
}

// The issue's "done when": train from Hub ids through HF_ENDPOINT, then again with HF_HUB_OFFLINE=1
// and the server gone.
TEST_F(HubTest, TrainFromHubIdsThenOffline) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  const fs::path work = root_ / "train";
  fs::create_directories(work);
  {
    std::ifstream in(shared_path("data/amazon_polarity/train.jsonl"));
    std::ofstream train(work / "train.jsonl"), test(work / "test.jsonl");
    std::string line;
    for (int i = 0; i < 96 && std::getline(in, line); ++i) (i < 64 ? train : test) << line << "\n";
  }
  auto command = [&](const std::string& env, const std::string& out_dir) {
    return fmt::format("{} HF_HUB_CACHE={} HF_HUB_DISABLE_PROGRESS_BARS=1 {} train --model distilbert-base-cased "
                       "--tokenizer distilbert-base-cased --train {} --test {} --text content --label label "
                       "--max-steps 4 --train-batch-size 16 --max-length 64 --save-strategy no --output-dir {}",
                       env, cache_.string(), TUNESERVE_BINARY, (work / "train.jsonl").string(),
                       (work / "test.jsonl").string(), (work / out_dir).string());
  };
  const auto own = start_server("");
  ASSERT_TRUE(own);
  std::string out;
  ASSERT_EQ(run_command(command("HF_ENDPOINT=" + own->endpoint, "online"), out), 0) << out;
  EXPECT_THAT(out, HasSubstr("eval: loss"));
  EXPECT_THAT(requests(*own), HasSubstr("HEAD /distilbert-base-cased/resolve/main/model.safetensors\nGET /cdn/"));
  EXPECT_TRUE(fs::exists(work / "online/model.safetensors"));
  EXPECT_TRUE(fs::exists(work / "online/tokenizer.json"));
  own->process->stop();
  ASSERT_EQ(run_command(command("HF_ENDPOINT=" + own->endpoint + " HF_HUB_OFFLINE=1", "offline"), out), 0) << out;
  EXPECT_THAT(out, HasSubstr("eval: loss"));
  // Same data, seed and weights: the offline run trains to the same model.
  EXPECT_EQ(read_file(work / "online/model.safetensors"), read_file(work / "offline/model.safetensors"));
}

TEST_F(HubTest, CommandLineErrorsAreOneLine) {
  std::string out;
  const std::string env = fmt::format("HF_ENDPOINT={} HF_HUB_CACHE={} ", server_->endpoint, cache_.string());
  EXPECT_EQ(run_command(env + TUNESERVE_BINARY + " predict --model acme/nothing 'x'", out), 1);
  EXPECT_THAT(out, HasSubstr("error: acme/nothing: config.json at revision main: 404: repository acme/nothing not found"));
  EXPECT_EQ(count_lines(out), 1u) << out;
  EXPECT_EQ(run_command(env + TUNESERVE_BINARY + " tokenize --tokenizer acme/private </dev/null", out), 1);
  EXPECT_THAT(out, HasSubstr("set HF_TOKEN"));
  EXPECT_EQ(run_command("echo '{\"text\": \"hi\"}' | " + env + "HF_TOKEN=hf_secret " + TUNESERVE_BINARY +
                            " tokenize --tokenizer acme/private",
                        out),
            0)
      << out;
  EXPECT_EQ(run_command(env + "HF_HUB_OFFLINE=1 " + TUNESERVE_BINARY + " predict --model acme/tiny 'x'", out), 1);
  EXPECT_THAT(out, ::testing::AllOf(HasSubstr("HF_HUB_OFFLINE"), HasSubstr(cache_.string())));
  EXPECT_EQ(run_command(env + TUNESERVE_BINARY + " predict --model ./no/such/dir 'x'", out), 1);
  EXPECT_THAT(out, HasSubstr("no such model directory, and not a Hugging Face Hub id"));
}

// serve with no --model takes HF_MODEL_ID, as SageMaker's Hugging Face containers do.
TEST_F(HubTest, ServeTakesHfModelId) {
  const int port = tuneserve::testing::free_port();
  BackgroundProcess serve(fmt::format("env HF_ENDPOINT={} HF_HUB_CACHE={} HF_MODEL_ID=acme/tiny {} serve --port {}",
                                      server_->endpoint, cache_.string(), TUNESERVE_BINARY, port),
                          (root_ / "serve-hf-model-id.log").string());
  ASSERT_TRUE(serve.wait_for_line("(loaded on)", std::chrono::seconds(60))) << serve.log();
  const auto r = tuneserve::testing::http_request(port, "POST", "/invocations", R"({"inputs": "I love it"})",
                                                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"label\""));
  EXPECT_TRUE(fs::exists(cache_ / "models--acme--tiny/refs/main"));
}

}  // namespace
}  // namespace tuneserve::hub
