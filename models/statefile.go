package models

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/tsrep/tsrep/internal/binenc"
)

// A learner state file is
//
//	magic "TSREPMDL" | version u32 | learner name (u32 length, bytes) |
//	state length u64 | state (Learner.AppendState) | CRC-32C u32
//
// little-endian, the checksum (Castagnoli) covering every byte before it.
const (
	stateFileMagic   = "TSREPMDL"
	stateFileVersion = 1
)

// ErrNotStateFile is wrapped by LoadFile's error for a file that is not a
// learner state file at all.
var ErrNotStateFile = errors.New("not a tsrep learner state file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SaveFile writes l's full state to path, atomically: a temporary file in
// the same directory is written, synced and renamed over path.
func SaveFile(path string, l Learner) error {
	var st binenc.Writer
	l.AppendState(&st)
	w := binenc.Writer{B: make([]byte, 0, len(st.B)+64)}
	w.B = append(w.B, stateFileMagic...)
	w.U32(stateFileVersion)
	w.String(l.Name())
	w.U64(uint64(len(st.B)))
	w.B = append(w.B, st.B...)
	w.U32(crc32.Checksum(w.B, castagnoli))

	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save learner state: %w", err)
	}
	tmp := f.Name()
	if _, err = f.Write(w.B); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save learner state to %s: %w", path, err)
	}
	return nil
}

// LoadFile restores l's state from a file written by SaveFile. The file
// must be intact (checksum), of this format version, and written by a
// learner of the same name and shape.
func LoadFile(path string, l Learner) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load learner state: %w", err)
	}
	if err := loadStateBytes(b, l); err != nil {
		return fmt.Errorf("load learner state from %s: %w", path, err)
	}
	return nil
}

func loadStateBytes(b []byte, l Learner) error {
	if len(b) < len(stateFileMagic) || !bytes.Equal(b[:len(stateFileMagic)], []byte(stateFileMagic)) {
		return ErrNotStateFile
	}
	if len(b) < len(stateFileMagic)+4+4 {
		return fmt.Errorf("%w: truncated header", binenc.ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x): the file is damaged or truncated",
			binenc.ErrCorrupt, sum, got)
	}
	r := binenc.NewReader(body[len(stateFileMagic):])
	if v := r.U32(); r.Err() == nil && v != stateFileVersion {
		return fmt.Errorf("state file format version %d, this build reads %d", v, stateFileVersion)
	}
	name := r.String(1 << 12)
	n := r.U64()
	if err := r.Err(); err != nil {
		return err
	}
	if name != l.Name() {
		return fmt.Errorf("the file holds the state of learner %q, not %q", name, l.Name())
	}
	if n != uint64(len(r.B)) {
		return fmt.Errorf("%w: state length %d, %d bytes present", binenc.ErrCorrupt, n, len(r.B))
	}
	sr := binenc.NewReader(r.B)
	if err := l.LoadState(sr); err != nil {
		return err
	}
	return sr.Done()
}
