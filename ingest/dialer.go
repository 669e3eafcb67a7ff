package ingest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tsrep/tsrep/config"
)

// NewDialer returns the dialer every Kafka connection of tsrep uses, with
// TLS and SASL as configured. The SASL password is read from the
// environment variable kafka.sasl.password_env names.
func NewDialer(c config.Kafka) (*kafka.Dialer, error) {
	d := &kafka.Dialer{
		ClientID:  c.ClientID,
		Timeout:   10 * time.Second,
		DualStack: true,
	}
	if c.TLS.Enabled {
		t, err := TLSConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		d.TLS = t
	}
	if c.SASL.Mechanism != "" {
		m, err := SASLMechanism(c.SASL)
		if err != nil {
			return nil, err
		}
		d.SASLMechanism = m
	}
	return d, nil
}

// PlaintextPassword reports whether d sends a SASL password in clear text:
// the PLAIN mechanism without TLS (config.PlainSASLWarning says what to do).
func PlaintextPassword(d *kafka.Dialer) bool {
	return d != nil && d.SASLMechanism != nil && d.SASLMechanism.Name() == "PLAIN" && d.TLS == nil
}

// TLSConfig builds the client TLS configuration of [kafka.tls].
func TLSConfig(c config.TLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file %s: no PEM certificate in it", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// SASLMechanism builds the mechanism of [kafka.sasl].
func SASLMechanism(c config.SASL) (sasl.Mechanism, error) {
	pass, ok := os.LookupEnv(c.PasswordEnv)
	if !ok {
		return nil, fmt.Errorf("kafka.sasl: environment variable %s (kafka.sasl.password_env) is not set", c.PasswordEnv)
	}
	switch c.Mechanism {
	case "plain":
		return plain.Mechanism{Username: c.Username, Password: pass}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.Username, pass)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, c.Username, pass)
	}
	return nil, errors.New("kafka.sasl.mechanism: unknown " + c.Mechanism)
}
