# Copyright: kubegpu.core contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of every module that talks to the Kubernetes API.
Private to the collection; the matching spec is module_utils/_kube.py."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - When neither O(kubeconfig) nor O(host) is given, the client uses
        C(~/.kube/config), or the in-cluster service account when it runs in a pod.
      - With a C(KUBECONFIG)-style list of paths, the first one is read.
      - "The kubeconfig is read as kubectl reads it, without the kubernetes Python library: the context's cluster
        (C(server), C(certificate-authority) or C(certificate-authority-data), C(insecure-skip-tls-verify),
        C(tls-server-name), C(proxy-url)) and user (C(token), C(tokenFile), C(client-certificate)/C(client-key) or
        their C(-data), an C(exec) plugin, C(username)/C(password)), relative paths from the kubeconfig's folder.
        Only a user with an C(auth-provider) (for example oidc) needs the kubernetes library."
      - A kubeconfig user whose token comes from an exec plugin (for example C(aws eks get-token) or kubelogin) or a
        C(tokenFile) gets a new token when the old one ends, so a long task outlives it, as with client-go. The exec
        plugin is run again once its C(ExecCredential)'s C(expirationTimestamp) has passed; and when the API server
        answers 401, the plugin is run again (or the file read again) and the request repeated once. The in-cluster
        service account token file is read again on 401 too.
      - Can be set with the E(K8S_AUTH_KUBECONFIG) or E(KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use; the file's current context when omitted.
      - Can be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the API server, for example V(https://10.0.0.1:6443). Overrides the kubeconfig's server.
      - Can be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - A bearer token to authenticate with, for example a service account token.
      - Can be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for HTTP basic authentication (with O(password)), for API servers that still accept it.
      - Can be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication with O(username).
      - Can be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - When omitted, the kubeconfig decides (C(insecure-skip-tls-verify)); otherwise certificates are verified.
      - Can be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate bundle that signed the API server's certificate; overrides the kubeconfig's.
      - Can be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with (with O(client_key)); overrides the kubeconfig's.
      - Can be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the private key of O(client_cert).
      - Can be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through, for example V(http://proxy.example:3128);
        user and password may be part of the URL.
      - When omitted, the kubeconfig's C(proxy-url), if any, is used.
      - Can be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  api_timeout:
    description:
      - Seconds one API request may take in all, retries included. A positive number; V(0) or a negative value is
        refused before any request.
      - Requests answered with 429 (after the server's C(Retry-After)), 500, 502, 503 or 504, or whose connection
        drops, are retried with exponential backoff until this time is spent; a refused connection is tried three times.
      - Can be set with the E(KUBEGPU_API_TIMEOUT) environment variable.
    type: float
    default: 60.0
requirements:
  - urllib3 (Python library, on the host that runs the module; the kubernetes library brings it)
  - kubernetes >= 24.2.0 (Python library), only for a kubeconfig user with C(auth-provider) (for example oidc)
notes:
  - "These modules run where the API is reachable, usually the controller
    (C(delegate_to: localhost) or C(run_once)); they need no access to the nodes."
  - "Set these options for many tasks at once with
    C(module_defaults: {group/kubegpu.core.k8s: {...}})."
"""
