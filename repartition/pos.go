package repartition

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tsrep/tsrep/internal/binenc"
)

// pos is a point's place in the order the stage writes points of one
// input partition to one internal partition: its effective event time
// (the running maximum of its input partition's message times, see
// source.eff), its series key (measurement + tag set), then its offset
// and index in the input. Writes from one input partition to one internal
// partition only ever go up in pos, across restarts too, so the last
// pos the internal topic holds from an input partition says which of the
// input's points it already has.
type pos struct {
	eff int64
	key []byte
	off int64
	idx uint32
}

func comparePos(a, b *pos) int {
	if c := cmp.Compare(a.eff, b.eff); c != 0 {
		return c
	}
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	if c := cmp.Compare(a.off, b.off); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}

// HeaderSource is the header of an internal record that names, for each
// input partition with points in the record, the pos of its last one.
const HeaderSource = "tsrep-src"

// srcPos is one entry of HeaderSource.
type srcPos struct {
	topic string
	part  int
	pos   pos
}

const (
	maxHeaderSources = 1 << 16
	maxKeyBytes      = 1 << 20
)

func appendSources(b []byte, ss []srcPos) []byte {
	w := binenc.Writer{B: b}
	w.U8(1) // version
	w.Len(len(ss))
	for i := range ss {
		s := &ss[i]
		w.String(s.topic)
		w.U32(uint32(s.part))
		w.I64(s.pos.eff)
		w.I64(s.pos.off)
		w.U32(s.pos.idx)
		w.Bytes(s.pos.key)
	}
	return w.B
}

func decodeSources(b []byte) ([]srcPos, error) {
	r := binenc.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != 1 {
		return nil, fmt.Errorf("%s header version %d", HeaderSource, v)
	}
	n := r.Len(maxHeaderSources, 1)
	out := make([]srcPos, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		var s srcPos
		s.topic = r.String(249)
		s.part = int(r.U32())
		s.pos.eff = r.I64()
		s.pos.off = r.I64()
		s.pos.idx = r.U32()
		s.pos.key = bytes.Clone(r.Bytes(maxKeyBytes))
		out = append(out, s)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%s header: %w", HeaderSource, err)
	}
	return out, nil
}

// commitMeta is what the stage commits with an input partition's offset:
// the running maximum event time of the messages before it (so that the
// next owner orders what follows as this one would have), how many points
// of the message at the offset are written already, and, for each
// internal partition, an offset at or before which nothing was written
// from the input partition past the committed offset (so that the next
// owner only scans the internal topic from there for what it already
// holds). ends is nil when it did not fit Kafka's metadata limit.
type commitMeta struct {
	wm   int64
	skip int
	ends []int64
}

// maxMetadata keeps commit metadata under the brokers' default
// offset.metadata.max.bytes (4096).
const maxMetadata = 4000

func (m commitMeta) String() string {
	var b strings.Builder
	b.WriteString("r1 ")
	if m.wm == math.MinInt64 {
		b.WriteByte('-')
	} else {
		b.WriteString(strconv.FormatInt(m.wm, 10))
	}
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(m.skip))
	if m.ends != nil {
		b.WriteByte(' ')
		for i, e := range m.ends {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(e, 10))
		}
	}
	if b.Len() > maxMetadata {
		return commitMeta{wm: m.wm, skip: m.skip}.String()
	}
	return b.String()
}

var errNoMeta = errors.New("no repartition metadata")

func parseCommitMeta(s string) (commitMeta, error) {
	f := strings.Fields(s)
	if len(f) < 3 || f[0] != "r1" {
		return commitMeta{}, errNoMeta
	}
	m := commitMeta{wm: math.MinInt64}
	if f[1] != "-" {
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return commitMeta{}, fmt.Errorf("commit metadata %q: %w", s, err)
		}
		m.wm = v
	}
	skip, err := strconv.Atoi(f[2])
	if err != nil || skip < 0 {
		return commitMeta{}, fmt.Errorf("commit metadata %q: bad count %q", s, f[2])
	}
	m.skip = skip
	if len(f) > 3 {
		for _, e := range strings.Split(f[3], ",") {
			v, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return commitMeta{}, fmt.Errorf("commit metadata %q: %w", s, err)
			}
			m.ends = append(m.ends, v)
		}
	}
	return m, nil
}

// partitionOf is the partition of n that kafka-go's Hash balancer picks
// for key (ingest.PartitionOf, the partitioner `tsrep produce` and
// feed.Produce use): FNV-1a, as Sarama's hash partitioner. It does not
// allocate.
func partitionOf(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	p := int32(h) % int32(n)
	if p < 0 {
		p = -p
	}
	return int(p)
}
