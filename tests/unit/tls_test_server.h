#pragma once
// For unit tests of https clients: certificates made with the `openssl` CLI in a temp dir, and a
// TLS server on 127.0.0.1 that records what it received.
#include <openssl/ssl.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/proc/subprocess.h"

namespace assay::tls_test {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Runs openssl with `args`; FAILs with its stderr when it does not exit 0.
inline void OpenSsl(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand(argv, cwd, {}, {}, absl::Seconds(60));
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
}

// Certificates in a fresh temp dir: ca.pem; leaf.{pem,key} (CA-signed, localhost + 127.0.0.1);
// self.{pem,key} (self-signed, same names); other.{pem,key} (CA-signed, other.example only).
struct Certs {
  std::string dir;
  Certs() {
    dir = (std::filesystem::temp_directory_path() / "assay-tls-XXXXXX").string();
    REQUIRE(mkdtemp(dir.data()) != nullptr);
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1", "-nodes"};
    auto with = [&](std::vector<std::string> a, const std::vector<std::string>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    OpenSsl(with({"req", "-x509", "-days", "2", "-subj", "/CN=Assay Test CA", "-keyout", "ca.key",
                  "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                  "keyUsage=critical,keyCertSign,cRLSign"},
                 ec),
            dir);
    OpenSsl(with({"req", "-x509", "-days", "2", "-subj", "/CN=localhost", "-keyout", "self.key",
                  "-out", "self.pem", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"},
                 ec),
            dir);
    Leaf("leaf", "subjectAltName=DNS:localhost,IP:127.0.0.1", ec);
    Leaf("other", "subjectAltName=DNS:other.example", ec);
  }
  void Leaf(const std::string& name, const std::string& san, const std::vector<std::string>& ec) {
    std::ofstream(dir + "/" + name + ".ext")
        << san << "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::vector<std::string> req = {"req",         "-subj", "/CN=" + name, "-keyout",
                                    name + ".key", "-out",  name + ".csr"};
    req.insert(req.end(), ec.begin(), ec.end());
    OpenSsl(req, dir);
    OpenSsl({"x509", "-req", "-days", "2", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
             "ca.key", "-CAcreateserial", "-out", name + ".pem", "-extfile", name + ".ext"},
            dir);
  }
  ~Certs() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path(const std::string& file) const { return dir + "/" + file; }
};

inline const Certs& TestCerts() {
  static const Certs* certs = new Certs();
  return *certs;
}

// A TLS server on 127.0.0.1: one connection at a time, answers 201 {"ok":true}, records each
// request (and the SNI name the client sent), counts handshakes that failed.
class TlsServer {
 public:
  TlsServer(const std::string& cert, const std::string& key) : ctx_(ssl::context::tls_server) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, ssl::context::pem);
    acceptor_.open(tcp::v4());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    try {  // wake the blocking accept
      net::io_context ioc;
      tcp::socket s(ioc);
      s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
    } catch (...) {
    }
    thread_.join();
  }
  int port() const { return port_; }
  struct Seen {
    std::string sni, method, target, host, body;
  };
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  int failed_handshakes() const { return failed_handshakes_; }

 private:
  void Serve() {
    while (!stop_) {
      tcp::socket socket(ioc_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) continue;
      ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
      stream.handshake(ssl::stream_base::server, ec);
      if (ec) {
        ++failed_handshakes_;
        continue;
      }
      const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back({sni != nullptr ? sni : "", std::string(req.method_string()),
                         std::string(req.target()), std::string(req[http::field::host]),
                         req.body()});
      }
      http::response<http::string_body> res{http::status::created, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"ok":true})";
      res.prepare_payload();
      http::write(stream, res, ec);
      stream.shutdown(ec);
    }
  }

  net::io_context ioc_;
  ssl::context ctx_;
  tcp::acceptor acceptor_{ioc_};
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_handshakes_{0};
  std::mutex mu_;
  std::vector<Seen> seen_;
  std::thread thread_;
};

}  // namespace assay::tls_test
