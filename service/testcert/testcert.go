// Package testcert makes certificates for tests: a CA of the test's own and
// the server and client certificates it signs, in memory and as PEM files,
// so that TLS to Kafka and Redis is tested without a certificate on disk.
package testcert

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
	"testing"
	"time"
)

// Cert is a certificate made for a test, with its key.
type Cert struct {
	X509   *x509.Certificate
	Key    *ecdsa.PrivateKey
	PEM    []byte // the certificate
	KeyPEM []byte // its private key
	Pair   tls.Certificate
}

// NewCA makes a self-signed CA, valid for an hour.
func NewCA(t testing.TB) *Cert {
	t.Helper()
	return makeCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "presence test ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil)
}

// Server makes a server certificate signed by ca for names, each a DNS
// name or an IP address.
func (ca *Cert) Server(t testing.TB, names ...string) *Cert {
	t.Helper()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: names[0]}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return makeCert(t, tmpl, ca)
}

// Client makes a client certificate signed by ca for name.
func (ca *Cert) Client(t testing.TB, name string) *Cert {
	t.Helper()
	return makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca)
}

// Pool is a certificate pool holding the CA.
func (ca *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.X509)
	return p
}

// Files writes the certificate and its key to PEM files of the test's
// own and returns their paths.
func (c *Cert) Files(t testing.TB) (cert, key string) {
	t.Helper()
	return WriteFile(t, "cert.pem", c.PEM), WriteFile(t, "key.pem", c.KeyPEM)
}

// WriteFile writes data to a file of the test's own and returns its path.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func makeCert(t testing.TB, tmpl *x509.Certificate, parent *Cert) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.X509, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
	if c.X509, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if c.Pair, err = tls.X509KeyPair(c.PEM, c.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}
