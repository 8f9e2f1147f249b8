-- Each log entry's digest (sha256 of its body, hex): the tree's leaf input, so a server
-- rebuilds its Merkle tree at start from 64 characters per entry instead of reading and
-- hashing every body. Entries written before this column are filled in by the first
-- server to open the log.
ALTER TABLE log_entries ADD COLUMN leaf TEXT;
