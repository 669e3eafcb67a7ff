package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Blobs are values larger than a Kafka record may be (a partition's state
// with 100,000 series is hundreds of MB; the broker's default limit is
// 1 MB), stored in a compacted topic as chunk records followed by a
// manifest record:
//
//	chunk:    key "<name>\x00<gen>\x00<i>"  value: bytes [i·size, (i+1)·size) of the blob
//	manifest: key "<name>"                  value: "TSREPBL1" | gen u8 | chunks u32 | length u64 | CRC-32C u32 | offset i64 per chunk
//
// The manifest is written last, after every chunk is acknowledged, and
// lists the offsets of its chunks, so a reader finds them without scanning
// the topic, and a blob whose writer died halfway (no manifest) is never
// read. Writes alternate between two generations of chunk keys (double
// buffering): compaction keeps the latest record per key, so the chunks of
// the blob the newest manifest names are never compacted away by the
// write that follows it, even if that write dies before its manifest.
const (
	blobMagic     = "TSREPBL1"
	blobHeader    = 8 + 1 + 4 + 8 + 4
	maxBlobChunks = 1 << 20
	// BlobChunk is the size of a blob's chunk records: well under the
	// brokers' default message.max.bytes of 1 MB.
	BlobChunk = 512 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ErrCorruptBlob is wrapped by errors about blobs that cannot be read back
// whole.
var ErrCorruptBlob = errors.New("corrupt blob")

func chunkKey(name string, gen uint8, i int) []byte {
	return []byte(name + "\x00" + strconv.Itoa(int(gen)) + "\x00" + strconv.Itoa(i))
}

// blobManifest is a decoded manifest record.
type blobManifest struct {
	gen     uint8
	length  uint64
	crc     uint32
	offsets []int64
}

func (m *blobManifest) encode() []byte {
	b := make([]byte, blobHeader, blobHeader+8*len(m.offsets))
	copy(b, blobMagic)
	b[8] = m.gen
	binary.LittleEndian.PutUint32(b[9:], uint32(len(m.offsets)))
	binary.LittleEndian.PutUint64(b[13:], m.length)
	binary.LittleEndian.PutUint32(b[21:], m.crc)
	for _, o := range m.offsets {
		b = binary.LittleEndian.AppendUint64(b, uint64(o))
	}
	return b
}

func decodeManifest(b []byte) (blobManifest, error) {
	var m blobManifest
	if len(b) < blobHeader || string(b[:8]) != blobMagic {
		return m, fmt.Errorf("%w: not a blob manifest", ErrCorruptBlob)
	}
	m.gen = b[8]
	n := binary.LittleEndian.Uint32(b[9:])
	m.length = binary.LittleEndian.Uint64(b[13:])
	m.crc = binary.LittleEndian.Uint32(b[21:])
	if n > maxBlobChunks || len(b) != blobHeader+8*int(n) || m.gen > 1 {
		return m, fmt.Errorf("%w: manifest of %d chunks is %d bytes", ErrCorruptBlob, n, len(b))
	}
	for i := 0; i < int(n); i++ {
		m.offsets = append(m.offsets, int64(binary.LittleEndian.Uint64(b[blobHeader+8*i:])))
	}
	return m, nil
}

// blobTopic writes and reads blobs in one topic through kafka-go's
// low-level client (Produce and Fetch answer with offsets, which the
// manifest needs).
type blobTopic struct {
	c     *Cluster
	topic string
}

// put writes value as blob name in partition part, generation gen, and
// returns once the manifest is acknowledged by every in-sync replica.
func (t *blobTopic) put(ctx context.Context, part int, name string, gen uint8, value []byte) error {
	n := (len(value) + BlobChunk - 1) / BlobChunk
	m := blobManifest{gen: gen, length: uint64(len(value)), crc: crc32.Checksum(value, castagnoli), offsets: make([]int64, n)}
	now := time.Now()
	for i := 0; i < n; i++ {
		chunk := value[i*BlobChunk : min(len(value), (i+1)*BlobChunk)]
		off, err := t.produce(ctx, part, kafka.Record{Time: now, Key: kafka.NewBytes(chunkKey(name, gen, i)), Value: kafka.NewBytes(chunk)})
		if err != nil {
			return fmt.Errorf("write chunk %d/%d of %s to %s/%d: %w", i+1, n, name, t.topic, part, err)
		}
		m.offsets[i] = off
	}
	if _, err := t.produce(ctx, part, kafka.Record{Time: now, Key: kafka.NewBytes([]byte(name)), Value: kafka.NewBytes(m.encode())}); err != nil {
		return fmt.Errorf("write manifest of %s to %s/%d: %w", name, t.topic, part, err)
	}
	return nil
}

func (t *blobTopic) produce(ctx context.Context, part int, r kafka.Record) (int64, error) {
	resp, err := t.c.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: t.topic, Partition: part, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(r),
	})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	for _, e := range resp.RecordErrors {
		return 0, e
	}
	return resp.BaseOffset, nil
}

// record is one fetched record.
type record struct {
	offset     int64
	key, value []byte
}

// fetch calls fn with the records of partition part in [from, end), in
// order, until fn returns false.
func (t *blobTopic) fetch(ctx context.Context, part int, from, end int64, fn func(record) bool) error {
	for from < end {
		resp, err := t.c.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: t.topic, Partition: part, Offset: from,
			MinBytes: 1, MaxBytes: 4 * BlobChunk, MaxWait: 100 * time.Millisecond,
		})
		if err != nil {
			return fmt.Errorf("read %s/%d at %d: %w", t.topic, part, from, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("read %s/%d at %d: %w", t.topic, part, from, resp.Error)
		}
		got := false
		for {
			r, err := resp.Records.ReadRecord()
			if err != nil {
				break
			}
			var rec record
			rec.offset = r.Offset
			if r.Key != nil {
				rec.key, _ = readAll(r.Key)
			}
			if r.Value != nil {
				rec.value, _ = readAll(r.Value)
			}
			if rec.offset < from {
				continue // a record batch can start before the offset asked for
			}
			got = true
			from = rec.offset + 1
			if !fn(rec) || from >= end {
				return nil
			}
		}
		if !got {
			if resp.HighWatermark <= from {
				return nil
			}
			return fmt.Errorf("read %s/%d at %d: no record returned below the high watermark %d", t.topic, part, from, resp.HighWatermark)
		}
	}
	return nil
}

// get reads blob name with manifest m back and checks it whole.
func (t *blobTopic) get(ctx context.Context, part int, name string, m blobManifest) ([]byte, error) {
	if m.length > uint64(len(m.offsets))*BlobChunk || m.length > 64<<30 {
		return nil, fmt.Errorf("%w: %s: %d bytes in %d chunks", ErrCorruptBlob, name, m.length, len(m.offsets))
	}
	var buf bytes.Buffer
	buf.Grow(int(m.length))
	// One pass over the range the chunks lie in (they are in increasing
	// offsets, usually adjacent): a fetch per chunk would read up to four
	// chunks to use one.
	i := 0
	var bad error
	if len(m.offsets) > 0 {
		err := t.fetch(ctx, part, m.offsets[0], m.offsets[len(m.offsets)-1]+1, func(r record) bool {
			if r.offset < m.offsets[i] {
				return true // another blob's record between the chunks
			}
			if r.offset > m.offsets[i] || !bytes.Equal(r.key, chunkKey(name, m.gen, i)) {
				bad = fmt.Errorf("%w: %s: chunk %d is not at offset %d of %s/%d", ErrCorruptBlob, name, i, m.offsets[i], t.topic, part)
				return false
			}
			buf.Write(r.value)
			i++
			return i < len(m.offsets)
		})
		if err != nil {
			return nil, err
		}
	}
	if bad == nil && i < len(m.offsets) {
		bad = fmt.Errorf("%w: %s: chunk %d is not at offset %d of %s/%d", ErrCorruptBlob, name, i, m.offsets[i], t.topic, part)
	}
	if bad != nil {
		return nil, bad
	}
	b := buf.Bytes()
	if uint64(len(b)) != m.length || crc32.Checksum(b, castagnoli) != m.crc {
		return nil, fmt.Errorf("%w: %s: length or checksum mismatch", ErrCorruptBlob, name)
	}
	return b, nil
}

// isChunk reports whether key is a chunk key (not a manifest).
func isChunk(key []byte) bool { return bytes.IndexByte(key, 0) >= 0 }

func readAll(b kafka.Bytes) ([]byte, error) {
	defer b.Close()
	out := make([]byte, b.Len())
	_, err := io.ReadFull(b, out)
	return out, err
}

// ensureTopic creates a compacted topic with the given partitions if it
// does not exist, and returns its partition count.
func (c *Cluster) ensureTopic(ctx context.Context, topic string, partitions int, configs ...kafka.ConfigEntry) (int, error) {
	entries := append([]kafka.ConfigEntry{
		{ConfigName: "cleanup.policy", ConfigValue: "compact"},
		{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(2 * BlobChunk)},
	}, configs...)
	return c.createTopic(ctx, topic, partitions, entries)
}
