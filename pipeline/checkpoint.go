package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StateStore keeps each partition's latest checkpoint body: the state of
// its stages after every message before the offset the body records (see
// learnStage.appendCheckpoint). A Save that returns nil is durable; a Save
// that fails or is interrupted leaves the previous body loadable; Load
// never returns a body that was not completely written.
type StateStore interface {
	Load(ctx context.Context, topic string, partition int) (body []byte, ok bool, err error)
	// Save stores body; it keeps no reference to it once it returns (the
	// caller reuses the buffer).
	Save(ctx context.Context, topic string, partition int, body []byte) error
	// Where names a partition's checkpoint for messages (a path, a topic).
	Where(topic string, partition int) string
}

// DirStore keeps checkpoints as one file per topic-partition:
//
//	magic "TSREPCKP" | version u32 | body length u64 | CRC-32C of body u32 | body
//
// written to a temporary file, fsynced, renamed over the old one, and the
// directory fsynced, so a crash leaves either the old or the new file whole.
type DirStore struct {
	dir string
}

const (
	ckptMagic   = "TSREPCKP"
	ckptVersion = 1
	ckptHeader  = 8 + 4 + 8 + 4
	// ckptMaxBody bounds what a load will read, so a corrupt length cannot
	// exhaust memory.
	ckptMaxBody = 8 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptCheckpoint is wrapped by errors about unreadable checkpoint files.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// NewDirStore keeps checkpoints under dir/<group>, the group's name made
// safe as one path element (see PathElement): a group named "../../x"
// stays inside dir.
func NewDirStore(dir, group string) (*DirStore, error) {
	d := filepath.Join(dir, PathElement(group))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("create checkpoint directory (pipeline.checkpoint_dir): %w", err)
	}
	// A crash between CreateTemp and Rename leaves a temporary file; the
	// checkpoint it was to replace is still whole, so it can go (once it is
	// old enough not to be another instance's write in progress).
	stale, _ := filepath.Glob(filepath.Join(d, "*.ckpt.tmp*"))
	for _, f := range stale {
		if fi, err := os.Stat(f); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
			_ = os.Remove(f)
		}
	}
	return &DirStore{dir: d}, nil
}

// Path is the file of a topic-partition. Kafka topic names cannot hold a
// path separator, but the name is made safe all the same.
func (s *DirStore) Path(topic string, partition int) string {
	return filepath.Join(s.dir, PathElement(topic)+"-"+strconv.Itoa(partition)+".ckpt")
}

// Where implements StateStore.
func (s *DirStore) Where(topic string, partition int) string { return s.Path(topic, partition) }

// Save implements StateStore: body is written durably.
func (s *DirStore) Save(_ context.Context, topic string, partition int, body []byte) error {
	path := s.Path(topic, partition)
	tmp, err := os.CreateTemp(s.dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	var hdr [ckptHeader]byte
	copy(hdr[:], ckptMagic)
	binary.LittleEndian.PutUint32(hdr[8:], ckptVersion)
	binary.LittleEndian.PutUint64(hdr[12:], uint64(len(body)))
	binary.LittleEndian.PutUint32(hdr[20:], crc32.Checksum(body, crcTable))
	if _, err = tmp.Write(hdr[:]); err == nil {
		_, err = tmp.Write(body)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load implements StateStore: the body of a topic-partition's checkpoint;
// ok is false if there is none.
func (s *DirStore) Load(_ context.Context, topic string, partition int) (body []byte, ok bool, err error) {
	path := s.Path(topic, partition)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	body, err = DecodeCheckpoint(b)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w (move it away to start this partition from its committed offset with empty state)", path, err)
	}
	return body, true, nil
}

// DecodeCheckpoint checks a checkpoint file's header and checksum and
// returns its body.
func DecodeCheckpoint(b []byte) ([]byte, error) {
	if len(b) < ckptHeader || !bytes.Equal(b[:8], []byte(ckptMagic)) {
		return nil, fmt.Errorf("%w: not a tsrep checkpoint (bad magic)", ErrCorruptCheckpoint)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != ckptVersion {
		return nil, fmt.Errorf("%w: checkpoint format version %d, this build reads %d", ErrCorruptCheckpoint, v, ckptVersion)
	}
	n := binary.LittleEndian.Uint64(b[12:])
	if n > ckptMaxBody || n != uint64(len(b)-ckptHeader) {
		return nil, fmt.Errorf("%w: body length %d, file holds %d", ErrCorruptCheckpoint, n, len(b)-ckptHeader)
	}
	body := b[ckptHeader:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[20:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptCheckpoint)
	}
	return body, nil
}

// PathElement makes name safe as one element of a file path: letters,
// digits, '.', '_' and '-' are kept, every other byte becomes %XX (so the
// mapping is injective), and a name of only dots is escaped whole, so
// neither "..", a separator nor an empty name can leave the parent folder.
func PathElement(name string) string {
	var b strings.Builder
	onlyDots := strings.Trim(name, ".") == ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		case c == '.' && !onlyDots:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}
