#include "cli/http_download.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace assay::cli {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

absl::StatusOr<HttpClientResponse> HttpDownload(
    std::string_view url, const std::vector<std::pair<std::string, std::string>>& headers,
    const DownloadSink& sink, absl::Duration idle) {
  absl::string_view rest(url.data(), url.size());
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("GET ", std::string(url), ": not an http URL"));
  }
  const size_t slash = rest.find('/');
  const std::string authority(rest.substr(0, slash));
  const std::string target =
      slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string host = authority, port = "80";
  if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  const std::string what = absl::StrCat("GET ", std::string(url));
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    tcp::socket socket(ioc);
    net::connect(socket, resolver.resolve(host, port));
    // Why socket timeouts: Beast's own timeouts apply to asynchronous calls only; a server
    // that stops sending fails the download after `idle` instead of hanging.
    const int64_t us = absl::ToInt64Microseconds(idle);
    timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, authority);
    req.set(bhttp::field::user_agent, "assay/0.1");
    for (const auto& [name, value] : headers) {
      if (absl::EqualsIgnoreCase(name, "Connection") || absl::EqualsIgnoreCase(name, "Host")) {
        continue;
      }
      req.set(name, value);
    }
    req.set(bhttp::field::connection, "close");
    bhttp::write(socket, req);

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);  // the sink decides what it keeps
    bhttp::read_header(socket, buffer, parser);
    HttpClientResponse out;
    out.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    const bool ok = out.status >= 200 && out.status <= 299;
    std::vector<char> piece(1 << 20);
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      beast::error_code ec;
      bhttp::read(socket, buffer, parser, ec);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec == net::error::would_block || ec == net::error::try_again) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, ": no data for ", absl::FormatDuration(idle)));
      }
      // Why kDataLoss: the server answered; its body was cut (a Content-Length not reached).
      if (ec) return absl::DataLossError(absl::StrCat(what, ": the body was cut: ", ec.message()));
      const size_t n = piece.size() - parser.get().body().size;
      if (n == 0) continue;
      if (ok) {
        if (!sink(std::string_view(piece.data(), n))) {
          return absl::AbortedError(absl::StrCat(what, ": stopped"));
        }
      } else if (out.body.size() < 64 * 1024) {
        out.body.append(piece.data(), std::min(n, 64 * 1024 - out.body.size()));
      }
    }
    return out;
  } catch (const boost::system::system_error& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace assay::cli
