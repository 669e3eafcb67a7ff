package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
)

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string // the client's
	serverCert                tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tsrep test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, server bool) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tsrep test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	p := &pki{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	sc, sk := issue(2, true)
	if p.serverCert, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	cc, ck := issue(3, false)
	p.caFile, p.certFile, p.keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	for f, b := range map[string][]byte{p.caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), p.certFile: cc, p.keyFile: ck} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestSecurity runs the binary against a broker that requires TLS with a
// client certificate and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), and an
// influxd with authentication: the data flows, wrong credentials are
// refused with a clear error, and no secret appears in the logs.
func TestSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	p := newPKI(t)
	influxURL, influxCred := testenv.StartAuthInflux(t)
	msgs := testenv.NABMessages(t, cloudwatch[:2]...)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			ctx := testenv.Context(t, 3*time.Minute)
			secret := "kafka-pa55-" + strings.ToLower(mech)
			b := startBroker(t, broker.Options{Extra: []kfake.Opt{
				kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool, MinVersion: tls.VersionTLS12}),
				kfake.EnableSASL(),
				kfake.Superuser(mech, "tsrep", secret),
			}})
			c := baseConfig(t, b.Addr(), "secure", "tsrep", testenv.Influx{URL: influxURL, Database: "secure_" + strings.ReplaceAll(strings.ToLower(mech), "-", "_")})
			c.Kafka.TLS = config.TLS{Enabled: true, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}
			c.Kafka.SASL = config.SASL{Mechanism: strings.ToLower(mech), Username: "tsrep", PasswordEnv: "TEST_KAFKA_SECRET"}
			c.Influx.TokenEnv = "TEST_INFLUX_SECRET"
			c.Log.Level = "debug"
			t.Setenv("TEST_KAFKA_SECRET", secret) // for this process's producer
			d, err := ingest.NewDialer(c.Kafka)
			if err != nil {
				t.Fatal(err)
			}
			if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: c.Kafka.Brokers, Dialer: d, Topic: "secure", Partitions: 4}, msgs); err != nil {
				t.Fatal(err)
			}
			path := writeConfig(t, c)
			env := []string{"TEST_KAFKA_SECRET=" + secret, "TEST_INFLUX_SECRET=" + influxCred}
			run := startTsrep(t, env, "run", "--until-end", "-c", path)
			run.wait(t, 2*time.Minute)

			cl := influxdb2.NewClient(influxURL, influxCred)
			defer cl.Close()
			rows, err := query.New(cl.QueryAPI(""), c.Influx.Bucket, c.Influx.MeasurementPrefix).ForecastSummary(ctx, c.Model.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].Forecasts == 0 {
				t.Fatalf("forecasts through TLS+SASL: %+v", rows)
			}

			// Wrong Kafka password: refused, said so, not leaked.
			wrong := startTsrep(t, []string{"TEST_KAFKA_SECRET=not-" + secret, "TEST_INFLUX_SECRET=" + influxCred}, "run", "-c", path)
			waitFor(t, 30*time.Second, "the failed authentication to be logged", func() bool {
				return strings.Contains(strings.ToLower(wrong.log.String()), "sasl")
			})
			wrong.kill()
			// Wrong InfluxDB credentials: refused (401), said so, not leaked.
			noInflux := startTsrep(t, []string{"TEST_KAFKA_SECRET=" + secret, "TEST_INFLUX_SECRET=admin:wrong-influx-pass"}, "run", "-c", path)
			waitFor(t, 30*time.Second, "the failed InfluxDB authentication to be logged", func() bool {
				return strings.Contains(noInflux.log.String(), "InfluxDB refused the credentials")
			})
			noInflux.kill()

			for name, log := range map[string]string{"good run": run.log.String(), "wrong kafka password": wrong.log.String(), "wrong influx password": noInflux.log.String()} {
				for _, s := range []string{secret, "not-" + secret, "adm1n-s3cret", "wrong-influx-pass"} {
					if strings.Contains(log, s) {
						t.Errorf("%s: the log contains a secret (%q)", name, s)
					}
				}
			}
		})
	}
}
