package dataset

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func TestInferLayout(t *testing.T) {
	f := func(s string, want time.Time) {
		t.Helper()
		l := InferLayout(s)
		if l == "" {
			t.Fatalf("%q: no layout", s)
		}
		got, err := ParseTime(s, l)
		if err != nil || got != want.UnixNano() {
			t.Fatalf("%q with %q: %v %v, want %v", s, l, time.Unix(0, got).UTC(), err, want)
		}
	}
	d := time.Date(2016, 7, 1, 13, 45, 0, 0, time.UTC)
	f("2016-07-01 13:45:00", d)
	f("2016-07-01T13:45:00Z", d)
	f("2016-07-01T14:45:00+01:00", d)
	f("2016-07-01 13:45", d)
	f("07/01/2016 13:45", d)
	f("2016-07-01", time.Date(2016, 7, 1, 0, 0, 0, 0, time.UTC))
	f("1467380700", d)          // seconds
	f("1467380700000", d)       // milliseconds
	f("1467380700000000", d)    // microseconds
	f("1467380700000000000", d) // nanoseconds
	if InferLayout("yesterday at noon") != "" {
		t.Fatal("inferred a layout for text")
	}
}

func TestParseCSV(t *testing.T) {
	in := "\ufeffvalue,timestamp,other\n1.5,2024-01-01 00:00:00,x\n,2024-01-01 00:01:00,2\n3,2024-01-01 00:02:00,inf\n\n"
	fr, err := ParseCSV(strings.NewReader(in), CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(fr.Names, ",") != "value,other" || fr.Rows() != 3 {
		t.Fatalf("names %v rows %d", fr.Names, fr.Rows())
	}
	if fr.Cols[0][0] != 1.5 || !math.IsNaN(fr.Cols[0][1]) || !math.IsNaN(fr.Cols[1][0]) || fr.Cols[1][1] != 2 || !math.IsNaN(fr.Cols[1][2]) {
		t.Fatalf("values %v", fr.Cols)
	}
	if fr.Time[2]-fr.Time[0] != int64(2*time.Minute) {
		t.Fatalf("times %v", fr.Time)
	}
	for _, bad := range []string{"t,v\n", "t\n2024-01-01,1\n", "t,v\nsoon,1\n"} {
		if _, err := ParseCSV(strings.NewReader(bad), CSVOptions{}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := ParseCSV(strings.NewReader("a,b\n1,2\n"), CSVOptions{TimeColumn: "when"}); err == nil || !strings.Contains(err.Error(), "when") {
		t.Errorf("a missing named time column: %v", err)
	}
	// A given layout wins over inference.
	fr, err = ParseCSV(strings.NewReader("d,v\n01.07.2016 13:45:00,1\n"), CSVOptions{TimeLayout: "02.01.2006 15:04:05"})
	if err != nil || fr.Time[0] != time.Date(2016, 7, 1, 13, 45, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("given layout: %v %v", fr, err)
	}
}

func TestReadBundled(t *testing.T) {
	fr, err := ReadCSV("../data/ETT/ETTh1.csv", CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fr.Rows() != 17420 || len(fr.Names) != 7 || fr.Names[6] != "OT" {
		t.Fatalf("ETTh1: %d rows, columns %v", fr.Rows(), fr.Names)
	}
	u, err := ReadUCR("../data/UCR/GunPoint/GunPoint_TRAIN.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Series) != 50 || len(u.Series[0]) != 150 || (u.Labels[0] != "1" && u.Labels[0] != "2") {
		t.Fatalf("GunPoint train: %d series of %d, label %q", len(u.Series), len(u.Series[0]), u.Labels[0])
	}
}

// TestArrowAndParquet writes a table with arrow-go's own writers and reads
// it back.
func TestArrowAndParquet(t *testing.T) {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "time", Type: &arrow.TimestampType{Unit: arrow.Millisecond}},
		{Name: "cpu", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "requests", Type: arrow.PrimitiveTypes.Int64},
		{Name: "host", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.Add(time.Duration(i) * time.Minute).UnixMilli()))
		if i == 2 {
			b.Field(1).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(1).(*array.Float64Builder).Append(float64(i) / 2)
		}
		b.Field(2).(*array.Int64Builder).Append(int64(100 + i))
		b.Field(3).(*array.StringBuilder).Append("h")
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	dir := t.TempDir()

	arrowPath := filepath.Join(dir, "t.arrow")
	f, _ := os.Create(arrowPath)
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f.Close()

	pqPath := filepath.Join(dir, "t.parquet")
	f, _ = os.Create(pqPath)
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	if err := pqarrow.WriteTable(tbl, f, 5, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	tbl.Release()
	f.Close()

	for path, read := range map[string]func(string, CSVOptions) (*Frame, error){arrowPath: ReadArrow, pqPath: ReadParquet} {
		fr, err := read(path, CSVOptions{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if strings.Join(fr.Names, ",") != "cpu,requests" || fr.Rows() != 5 {
			t.Fatalf("%s: names %v rows %d (the string column is not numeric)", path, fr.Names, fr.Rows())
		}
		if fr.Time[4] != t0.Add(4*time.Minute).UnixNano() || fr.Cols[0][1] != 0.5 || !math.IsNaN(fr.Cols[0][2]) || fr.Cols[1][4] != 104 {
			t.Fatalf("%s: times %v values %v", path, fr.Time, fr.Cols)
		}
	}
}
