// Command etcd runs one embedded etcd member for the tests' kube-apiserver: client URL from
// -listen (loopback), data in -data-dir, until SIGTERM/SIGINT. It is the etcd server library
// of the Kubernetes release this module pins, so storage and API server agree on the version.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	listen := flag.String("listen", "http://127.0.0.1:2379", "client URL (loopback)")
	peer := flag.String("peer", "http://127.0.0.1:2380", "peer URL (loopback)")
	dataDir := flag.String("data-dir", "", "data directory (required)")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("etcd: -data-dir is required")
	}
	client, err := url.Parse(*listen)
	if err != nil {
		log.Fatalf("etcd: -listen: %v", err)
	}
	peerURL, err := url.Parse(*peer)
	if err != nil {
		log.Fatalf("etcd: -peer: %v", err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dataDir
	cfg.Name = "tailwire-test"
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true // a throwaway store for tests: speed over durability
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd: %v", err)
	}
	defer server.Close()
	select {
	case <-server.Server.ReadyNotify():
		log.Printf("etcd: ready on %s", client)
	case <-time.After(60 * time.Second):
		server.Server.Stop()
		log.Fatal("etcd: not ready within 60s")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case err := <-server.Err():
		log.Fatalf("etcd: %v", err)
	}
}
