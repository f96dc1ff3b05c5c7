// A SQLite VFS that writes the frames a transaction appends to its WAL with
// one system call instead of two per page.
//
// SQLite writes each WAL frame as two pwrite calls (its 24-byte header, then
// the page), so a checkout commit of six pages made twelve calls before its
// fsync, about 10 µs of the commit on this project's machines. This VFS
// wraps the platform's default one and, for WAL files only, gathers
// contiguous writes in memory and writes them at once when the file is next
// synced, read, sized, truncated, closed, or when the connection publishes
// the frames to other connections (its wal-index barrier). Nothing is
// acknowledged earlier or later than with the default VFS: a commit's fsync
// still covers every frame, and no other connection can see a frame before
// it is in the file.
#pragma once

#include <sqlite3.h>

namespace loyalty::storage {

// Registers the VFS over the default one on first use (not as the default)
// and returns its name, for sqlite3_open_v2.
const char* WalBatchVfsName();

// Registers one named `name` (a string that outlives the process's use of
// it) over `base`; tests use it to see what reaches the VFS below.
void RegisterWalBatchVfs(const char* name, sqlite3_vfs* base);

}  // namespace loyalty::storage
