#pragma once

// The Azure Blob Storage BlobStore (also runs against the Azurite emulator).
// Layout inside the container, under `prefix` (may be empty):
//
//   <prefix>/blobs/<upload uuid>       an upload's block blob: uncommitted blocks
//                                      while it is in progress, the committed blob
//                                      afterwards (key "blobs/<uuid>")
//   <prefix>/blobs/<algorithm>-<hex>   blobs stored whole by put_blob()
//   <prefix>/uploads/<uuid>            the upload's existence marker, holding the
//                                      service's saved hash state
//   <prefix>/quarantine/<name>         marks blobs/<name> as quarantined
//
// Uploads: every flushed piece of an upload becomes one or more Put Block calls
// (block ids are base64 of a fixed-width counter, blocks are at most 64 MiB).
// The writer gathers small writes into 16 MiB blocks and sends each block in the
// background while the next one fills: at most one block being filled and one
// in flight per writer, never a whole layer. Azure allows 50,000 blocks per
// blob, so a client that PATCHes in tiny chunks (one block per PATCH) is limited
// to 50,000 PATCHes per upload. The byte count and the
// block order come from Get Block List (uncommitted), so any process can resume
// an upload after a restart. commit_upload() is Put Block List on the same blob:
// the bytes never move or get copied. It always returns the upload's own key,
// even when another blob with the same digest exists: the metadata decides
// duplicates, and a duplicate left without a row is an orphan that gc collects
// through list_blobs(). read_upload() is unsupported (uncommitted blocks cannot
// be read); the service keeps its hash state through save_upload_state().
//
// Quarantine never copies: quarantine_blob() writes the marker, then sets the
// metadata `registryquarantined=1` on the blob. open_blob()/stat_blob() see the
// flag in the blob's properties and restore (clear flag, drop marker) before
// answering; list_blobs() skips flagged blobs; purge_quarantined() deletes the
// blob only while it still carries the flag (If-Match on the ETag read with the
// flag), so a blob written again under the same key after quarantine survives.
//
// Redirects: with an account key, redirect_url() is a read-only service SAS URL.
// With only a SAS token, it is the blob URL plus that token when the token grants
// read and nothing else (sp=r; its own expiry applies, not the ttl), otherwise
// nullopt (the registry serves the bytes): a token that may write or delete is
// never handed to clients.
//
// Thread-safety: all methods may be called concurrently; HTTP clients come from a
// small pool (httplib::Client is not thread-safe), one per call in flight.

#include "common/storage/blob_store.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

namespace registry::storage {

struct AzureOptions {
  // http(s)://host[:port][/path]; for Azurite the path is the account
  // (http://127.0.0.1:10000/devstoreaccount1), for Azure it is empty
  // (https://ACCOUNT.blob.core.windows.net).
  std::string endpoint;
  std::string account;
  std::string container;
  std::string prefix;       // no leading or trailing '/'
  std::string ca_file;      // PEM bundle for TLS; empty: the system's
  std::string account_key;  // base64, as the portal shows it
  std::string sas_token;    // alternative to the key, without the leading '?'
  bool redirect = true;     // hand out SAS URLs for blob downloads
  // Page size for List Blobs; tests lower it to force several pages.
  int list_page_size = 5000;

  // Builds options from the configuration keys endpoint, account, container,
  // prefix, ca_file, account_key, sas_token, redirect ("true"/"false").
  // invalid_argument naming the first bad or missing value; unknown keys too.
  static Result<AzureOptions> from_settings(const std::map<std::string, std::string>& settings);
};

class AzureBlobStore final : public BlobStore
{
public:
  // Validates `options` (no request is made; use check() for that).
  // invalid_argument for bad options.
  static Result<std::unique_ptr<AzureBlobStore>> open(const AzureOptions& options);
  ~AzureBlobStore() override;

  std::string
  kind() const override
  {
    return "azure";
  }
  Result<void> check() override;
  Result<std::optional<std::string>> redirect_url(const std::string& key,
                                                  std::chrono::seconds ttl) override;

  Result<void> create_upload(const std::string& id) override;
  Result<uint64_t> upload_size(const std::string& id) override;
  Result<std::unique_ptr<UploadWriter>> append_upload(const std::string& id) override;
  Result<void> read_upload(const std::string& id, const ByteSink& sink) override;
  bool
  can_read_uploads() const override
  {
    return false;
  }
  // Every upload commits to blobs/<upload id>.
  bool
  commit_keys_are_unique() const override
  {
    return true;
  }
  Result<void> save_upload_state(const std::string& id, std::string_view state) override;
  Result<std::optional<std::string>> load_upload_state(const std::string& id) override;
  Result<void> sync_upload(const std::string& id) override;
  Result<std::string> commit_upload(const std::string& id, const oci::Digest& digest) override;
  Result<void> remove_upload(const std::string& id) override;
  Result<std::vector<ObjectInfo>> list_uploads() override;

  Result<std::string> put_blob(const oci::Digest& digest, std::string_view bytes) override;
  Result<std::unique_ptr<BlobReader>> open_blob(const std::string& key) override;
  Result<ObjectInfo> stat_blob(const std::string& key) override;
  Result<void> remove_blob(const std::string& key) override;
  Result<void> quarantine_blob(const std::string& key) override;
  Result<void> restore_blob(const std::string& key) override;
  Result<void> purge_quarantined(const std::string& key) override;
  Result<std::vector<std::string>> list_quarantined() override;
  Result<void> list_blobs(const std::function<bool(const ObjectInfo&)>& visit) override;

  const AzureOptions&
  options() const
  {
    return m_options;
  }

  // Implementation types, defined in the .cpp.
  struct Request;
  struct Response;
  struct Listing;

private:
  explicit AzureBlobStore(AzureOptions options);

  std::unique_ptr<httplib::Client> take_client();
  void give_back(std::unique_ptr<httplib::Client> client);
  std::unique_ptr<httplib::Client> make_client() const;

  // Sends one request (signed, with retries on 5xx and transport errors when
  // `request` is idempotent).
  Result<Response> send(const Request& request);
  // Sends once, on `client` (used by readers that keep their own client).
  Result<Response> send_once(httplib::Client& client, const Request& request) const;
  Result<Listing> list_page(const std::string& prefix, const std::string& marker, bool metadata);
  Result<void> list_all(const std::string& prefix, bool metadata,
                        const std::function<bool(const std::string& name, uint64_t size,
                                                 int64_t modified, bool quarantined)>& visit);

  std::string blob_name(const std::string& relative) const;
  std::string blob_path(const std::string& name) const;
  Result<std::string> upload_blob_name(const std::string& id) const;
  Result<std::string> key_blob_name(const std::string& key) const;
  Result<ObjectInfo> head_and_restore(const std::string& key, std::string* etag);
  Result<void> require_upload(const std::string& id);

  friend class AzureUploadWriter;
  friend class AzureBlobReader;

  AzureOptions m_options;
  std::string m_key; // decoded account key; empty with a SAS token
  std::string m_scheme_host_port;
  std::string m_base_path; // endpoint path, e.g. "/devstoreaccount1" or ""
  std::mutex m_pool_mutex;
  std::vector<std::unique_ptr<httplib::Client>> m_pool;
};

} // namespace registry::storage
