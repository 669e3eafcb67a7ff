package report_test

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotutil"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
	"github.com/tsrep/tsrep/report"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// setup writes the fixture into a database of its own and returns it
// with a client of each language, InfluxQL first.
func setup(t *testing.T) (*querytest.Fixture, []*query.Client) {
	t.Helper()
	e := querytest.Fresh(t)
	return e.Fixture, e.Clients()
}

// forecastSeries are the fixture's series with forecasts and imputed gaps.
func forecastSeries(fx *querytest.Fixture) []string {
	var out []string
	for s := range fx.Forecasts {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func decode(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// colours counts the distinct colours of img and the share of pixels that
// are not white.
func colours(img image.Image) (map[color.RGBA]int, float64) {
	seen := map[color.RGBA]int{}
	b := img.Bounds()
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			seen[c]++
			if c != (color.RGBA{255, 255, 255, 255}) {
				inked++
			}
		}
	}
	return seen, float64(inked) / float64(b.Dx()*b.Dy())
}

// hasColour reports whether at least n pixels are exactly plotutil.Color(i).
func hasColour(seen map[color.RGBA]int, i, n int) bool {
	c := color.RGBAModel.Convert(plotutil.Color(i)).(color.RGBA)
	return seen[c] >= n
}

func checkPNG(t *testing.T, path string, wantColours ...int) {
	t.Helper()
	img := decode(t, path)
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Errorf("%s: %dx%d is too small", path, b.Dx(), b.Dy())
	}
	seen, inked := colours(img)
	if len(seen) < 20 || inked < 0.01 || inked > 0.6 {
		t.Errorf("%s: %d colours, %.1f%% inked: not a plot", path, len(seen), 100*inked)
	}
	for _, c := range wantColours {
		if !hasColour(seen, c, 20) {
			t.Errorf("%s: nothing drawn in plot colour %d (%v)", path, c, plotutil.Color(c))
		}
	}
}

func TestWriteAllPlots(t *testing.T) {
	fx, cs := setup(t)
	for _, c := range cs {
		t.Run(string(c.Language()), func(t *testing.T) {
			dir := t.TempDir()
			if d := os.Getenv("TSREP_REPORT_DIR"); d != "" {
				dir = d // to look at the plots
			}
			series := forecastSeries(fx)
			res, err := report.Write(testenv.Context(t, time.Minute), c, report.Options{Series: series, Model: fx.Model, Dir: dir, Days: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Skipped) != 0 {
				t.Errorf("skipped: %v", res.Skipped)
			}
			var want []string
			for _, s := range series {
				for _, kind := range []string{"forecast_", "imputed_", "anomaly_", "similar_"} {
					want = append(want, filepath.Join(dir, kind+report.SeriesFileName(s)+".png"))
				}
			}
			want = append(want, filepath.Join(dir, "losses.png"), filepath.Join(dir, "embeddings_cosine.png"))
			if !slices.Equal(res.Files, want) {
				t.Fatalf("files\n%v\nwant\n%v", res.Files, want)
			}
			for _, s := range series {
				name := report.SeriesFileName(s) + ".png"
				checkPNG(t, filepath.Join(dir, "forecast_"+name), 0, 2) // error, forecast
				checkPNG(t, filepath.Join(dir, "imputed_"+name), 0)     // imputed
				checkPNG(t, filepath.Join(dir, "anomaly_"+name), 0, 2)  // high scores, score
				checkPNG(t, filepath.Join(dir, "similar_"+name), 2)     // bars
			}
			checkPNG(t, filepath.Join(dir, "losses.png"), 0, 1) // two partitions
			checkPNG(t, filepath.Join(dir, "embeddings_cosine.png"))
		})
	}
}

// TestWriteSkipsMissingData: a learner without embeddings, imputation,
// anomaly scores and two of the losses, and a series without forecasts:
// the plots that can be drawn are, the others are skipped with a reason.
func TestWriteSkipsMissingData(t *testing.T) {
	fx, cs := setup(t)
	dir := t.TempDir()
	series := []string{forecastSeries(fx)[0], `cpu,host=nope#usage`}
	res, err := report.Write(testenv.Context(t, time.Minute), cs[0], report.Options{Series: series, Model: fx.Other, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "forecast_"+report.SeriesFileName(series[0])+".png"), filepath.Join(dir, "losses.png")}
	if !slices.Equal(res.Files, want) {
		t.Fatalf("files %v, want %v", res.Files, want)
	}
	for _, p := range want {
		checkPNG(t, p)
	}
	text := strings.Join(res.Skipped, "\n")
	for _, w := range []string{
		"imputed_" + report.SeriesFileName(series[0]) + ".png: no imputed points",
		"anomaly_" + report.SeriesFileName(series[0]) + ".png: no anomaly scores",
		"similar_" + report.SeriesFileName(series[0]) + ".png: no embedding",
		"forecast_cpu_host_nope_usage.png: no forecasts",
		"imputed_cpu_host_nope_usage.png: no imputed points",
		"anomaly_cpu_host_nope_usage.png: no anomaly scores",
		"similar_cpu_host_nope_usage.png: no embedding",
		"embeddings_cosine.png: 0 series with embeddings of model \"rls\"",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("skipped:\n%s\nlacks %q", text, w)
		}
	}
	if len(res.Skipped) != 8 {
		t.Errorf("%d skipped: %v", len(res.Skipped), res.Skipped)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in %s", len(entries), dir)
	}
}

func TestWriteRange(t *testing.T) {
	fx, cs := setup(t)
	dir := t.TempDir()
	s := forecastSeries(fx)[0]
	// A range after all the data: nothing to draw over time, nothing
	// fails. The embedding plots are of the latest embeddings before To
	// (none: the latest), so they are drawn.
	from := fx.Start.Add(1000 * fx.Interval)
	res, err := report.Write(context.Background(), cs[0], report.Options{Series: []string{s}, Model: fx.Model, Dir: dir, From: from, Days: 7})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range res.Files {
		files = append(files, filepath.Base(f))
	}
	if want := []string{"similar_" + report.SeriesFileName(s) + ".png", "embeddings_cosine.png"}; !slices.Equal(files, want) || len(res.Skipped) != 4 {
		t.Errorf("files %v skipped %v", files, res.Skipped)
	}
	for _, sk := range res.Skipped {
		if !strings.Contains(sk, "since 2024-04-11 16:00") && !strings.HasPrefix(sk, "losses.png") {
			t.Errorf("skip %q does not name the range", sk)
		}
	}
}

func TestWriteRejectsBadOptions(t *testing.T) {
	for _, o := range []report.Options{
		{Series: []string{"cpu#u"}, Dir: t.TempDir()},                                      // no model
		{Series: []string{"cpu#u"}, Model: "m"},                                            // no dir
		{Series: []string{"cpu,host=a"}, Model: "m", Dir: t.TempDir()},                     // bad key
		{Series: []string{"cpu#u", "cpu#u"}, Model: "m", Dir: t.TempDir()},                 // twice
		{Series: []string{"cpu,b=1,a=2#u", "cpu,a=2,b=1#u"}, Model: "m", Dir: t.TempDir()}, // twice too
		{Series: []string{"cpu#u"}, Model: "m", Dir: t.TempDir(), Days: -1},                // negative days
	} {
		if _, err := report.Write(context.Background(), nil, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestSeriesFileName(t *testing.T) {
	for in, want := range map[string]string{
		`etth1,source=demo#HUFL`:          "etth1_source_demo_HUFL",
		`cpu,host=b\ 2,region=eu#usage`:   "cpu_host_b_2_region_eu_usage",
		`disk,model=x,path=C:\\data#free`: "disk_model_x_path_C_data_free",
		`mem,note="q'#used`:               "mem_note_q_used",
		`a.b-c_d#e`:                       "a.b-c_d_e",
	} {
		if got := report.SeriesFileName(in); got != want {
			t.Errorf("SeriesFileName(%q) = %q, want %q", in, got, want)
		}
	}
}
