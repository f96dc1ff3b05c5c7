#include "storage/wal_batch_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

namespace loyalty::storage {
namespace {

// The WAL's file format (https://sqlite.org/fileformat2.html#walformat): a
// 32-byte header, then frames of a 24-byte header and a page. SQLite writes
// a frame's header and its page with two calls; bytes 4-7 of a frame header
// are non-zero only in the frame that commits a transaction.
constexpr int kFrameHeaderSize = 24;

// A larger transaction (a sync batch, a fold) is written in runs of at most
// this size: the unix VFS masks a write's length to 17 bits (so at most
// 128 KiB - 1 per call), and a larger write can fail as a full disk.
constexpr size_t kMaxPending = size_t{64} << 10;

struct File {
  sqlite3_file base;   // first: SQLite sees a File as an sqlite3_file
  sqlite3_file* real;  // the default VFS's file, in the same allocation
  bool wal;
  // A WAL's appended bytes not written yet, from offset `pending_at`.
  std::vector<char> pending;
  sqlite3_int64 pending_at;
  // Everything below this offset was written in the WAL's current cycle:
  // a write there rewrites a frame (in place) and is not gathered.
  sqlite3_int64 appended_to;
  // The last gathered write was a commit frame's header: its page comes
  // next, and the transaction's frames are written with it.
  bool commit_page_next;
};

constexpr size_t RealOffset() { return (sizeof(File) + 15) & ~size_t{15}; }

File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Of(f)->real; }
sqlite3_vfs* RealVfs(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

int Flush(File* f) {
  f->commit_page_next = false;
  if (f->pending.empty()) return SQLITE_OK;
  const int rc = f->real->pMethods->xWrite(f->real, f->pending.data(),
                                           static_cast<int>(f->pending.size()), f->pending_at);
  // On failure SQLite abandons the transaction whose frames these were.
  f->pending.clear();
  return rc;
}

int WriteWal(File* f, const void* data, int n, sqlite3_int64 offset) {
  const auto* bytes = static_cast<const char*>(data);
  if (offset == 0) f->appended_to = 0;  // the WAL restarts: its header is rewritten
  const sqlite3_int64 pending_end = f->pending_at + static_cast<sqlite3_int64>(f->pending.size());
  const bool continues = !f->pending.empty() && offset == pending_end;
  const bool appends = continues || (f->pending.empty() && offset >= f->appended_to);
  if (!appends || f->pending.size() + static_cast<size_t>(n) > kMaxPending) {
    // A rewrite in place (checksums, a page written twice in one
    // transaction) or a full buffer: what is gathered goes first, in order.
    const bool commit_page = f->commit_page_next;
    if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
    if (!appends || static_cast<size_t>(n) > kMaxPending || commit_page) {
      f->appended_to = std::max(f->appended_to, offset + n);
      return f->real->pMethods->xWrite(f->real, data, n, offset);
    }
  }
  if (f->pending.empty()) f->pending_at = offset;
  f->pending.insert(f->pending.end(), bytes, bytes + n);
  f->appended_to = std::max(f->appended_to, offset + n);
  if (f->commit_page_next) return Flush(f);  // the commit frame is complete
  f->commit_page_next = n == kFrameHeaderSize && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
  return SQLITE_OK;
}

// ------------------------------------------------------------ io methods --

// Before any other call on a WAL: what is gathered is in the file.
int FlushWal(sqlite3_file* f) { return Of(f)->wal ? Flush(Of(f)) : SQLITE_OK; }

int Close(sqlite3_file* f) {
  File* file = Of(f);
  const int rc = FlushWal(f);
  const int closed = file->real->pMethods ? file->real->pMethods->xClose(file->real) : SQLITE_OK;
  file->~File();
  return rc != SQLITE_OK ? rc : closed;
}

int Read(sqlite3_file* f, void* data, int n, sqlite3_int64 offset) {
  if (const int rc = FlushWal(f); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xRead(Real(f), data, n, offset);
}

int Write(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  if (Of(f)->wal) return WriteWal(Of(f), data, n, offset);
  return Real(f)->pMethods->xWrite(Real(f), data, n, offset);
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = FlushWal(f); rc != SQLITE_OK) return rc;
  Of(f)->appended_to = std::min(Of(f)->appended_to, size);
  return Real(f)->pMethods->xTruncate(Real(f), size);
}

int Sync(sqlite3_file* f, int flags) {
  if (const int rc = FlushWal(f); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = FlushWal(f); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFileSize(Real(f), size);
}

int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}

int FileControl(sqlite3_file* f, int op, void* arg) {
  if (const int rc = FlushWal(f); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}

int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}

// Shared memory and memory mapping belong to the database file; the default
// VFS's methods run unchanged (their version is checked when opening).
int ShmMap(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), page, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int delete_flag) {
  return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
}
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
  return Real(f)->pMethods->xFetch(Real(f), offset, n, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), offset, p);
}

constexpr sqlite3_io_methods kMethods = {
    .iVersion = 3,
    .xClose = Close,
    .xRead = Read,
    .xWrite = Write,
    .xTruncate = Truncate,
    .xSync = Sync,
    .xFileSize = FileSize,
    .xLock = Lock,
    .xUnlock = Unlock,
    .xCheckReservedLock = CheckReservedLock,
    .xFileControl = FileControl,
    .xSectorSize = SectorSize,
    .xDeviceCharacteristics = DeviceCharacteristics,
    .xShmMap = ShmMap,
    .xShmLock = ShmLock,
    .xShmBarrier = ShmBarrier,
    .xShmUnmap = ShmUnmap,
    .xFetch = Fetch,
    .xUnfetch = Unfetch,
};

// ------------------------------------------------------------ vfs methods --

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  File* file = new (f) File{};
  file->base.pMethods = nullptr;  // SQLite closes nothing that failed to open
  file->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + RealOffset());
  file->wal = (flags & SQLITE_OPEN_WAL) != 0;
  const int rc = RealVfs(vfs)->xOpen(RealVfs(vfs), name, file->real, flags, out_flags);
  const sqlite3_io_methods* real = file->real->pMethods;
  // A platform VFS without shared memory or mmap (an older methods version)
  // is refused rather than half forwarded.
  if (rc != SQLITE_OK || real == nullptr || real->iVersion < kMethods.iVersion) {
    if (real) real->xClose(file->real);
    file->~File();
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  file->base.pMethods = &kMethods;
  return SQLITE_OK;
}

int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return RealVfs(vfs)->xDelete(RealVfs(vfs), name, sync_dir);
}
int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return RealVfs(vfs)->xAccess(RealVfs(vfs), name, flags, out);
}
int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return RealVfs(vfs)->xFullPathname(RealVfs(vfs), name, n, out);
}
void* DlOpen(sqlite3_vfs* vfs, const char* name) {
  return RealVfs(vfs)->xDlOpen(RealVfs(vfs), name);
}
void DlError(sqlite3_vfs* vfs, int n, char* out) { RealVfs(vfs)->xDlError(RealVfs(vfs), n, out); }
void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return RealVfs(vfs)->xDlSym(RealVfs(vfs), handle, symbol);
}
void DlClose(sqlite3_vfs* vfs, void* handle) { RealVfs(vfs)->xDlClose(RealVfs(vfs), handle); }
int Randomness(sqlite3_vfs* vfs, int n, char* out) {
  return RealVfs(vfs)->xRandomness(RealVfs(vfs), n, out);
}
int Sleep(sqlite3_vfs* vfs, int micros) { return RealVfs(vfs)->xSleep(RealVfs(vfs), micros); }
int CurrentTime(sqlite3_vfs* vfs, double* out) {
  return RealVfs(vfs)->xCurrentTime(RealVfs(vfs), out);
}
int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
  return RealVfs(vfs)->xGetLastError(RealVfs(vfs), n, out);
}
int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return RealVfs(vfs)->xCurrentTimeInt64(RealVfs(vfs), out);
}

}  // namespace

void RegisterWalBatchVfs(const char* name, sqlite3_vfs* base) {
  auto* vfs = new sqlite3_vfs{};  // registered for the life of the process
  vfs->iVersion = 2;
  vfs->szOsFile = static_cast<int>(RealOffset()) + base->szOsFile;
  vfs->mxPathname = base->mxPathname;
  vfs->zName = name;
  vfs->pAppData = base;
  vfs->xOpen = Open;
  vfs->xDelete = Delete;
  vfs->xAccess = Access;
  vfs->xFullPathname = FullPathname;
  vfs->xDlOpen = DlOpen;
  vfs->xDlError = DlError;
  vfs->xDlSym = DlSym;
  vfs->xDlClose = DlClose;
  vfs->xRandomness = Randomness;
  vfs->xSleep = Sleep;
  vfs->xCurrentTime = CurrentTime;
  vfs->xGetLastError = GetLastError;
  vfs->xCurrentTimeInt64 = CurrentTimeInt64;
  sqlite3_vfs_register(vfs, 0);
}

const char* WalBatchVfsName() {
  static constexpr const char* kName = "loyalty-wal-batch";
  static std::once_flag once;
  std::call_once(once, [] { RegisterWalBatchVfs(kName, sqlite3_vfs_find(nullptr)); });
  return kName;
}

}  // namespace loyalty::storage
