// The upstream CRDs the tests install into the real kube-apiserver (Gateway API, Envoy Gateway,
// cert-manager), taken from the YAML their Go modules ship, as envtest users load them. Nothing
// here is compiled: testing/peers/build downloads these modules and copies their CRD files
// into .peers/crds/<project>/.
module tailwire.test/peers/crds

go 1.26.5

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/envoyproxy/gateway v1.9.1
	sigs.k8s.io/gateway-api v1.6.3
)
