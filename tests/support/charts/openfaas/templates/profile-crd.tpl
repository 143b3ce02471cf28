{{- if .Values.createCRDs }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    helm.sh/resource-policy: keep
  labels:
    app.kubernetes.io/name: openfaas
  name: profiles.openfaas.com
spec:
  group: openfaas.com
  names:
    kind: Profile
    listKind: ProfileList
    plural: profiles
    singular: profile
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            apiVersion:
              type: string
            kind:
              type: string
            metadata:
              type: object
            spec:
              type: object
              properties:
                runtimeClassName:
                  type: string
                tolerations:
                  type: array
                  items:
                    type: object
                    properties:
                      key:
                        type: string
                      operator:
                        type: string
                      value:
                        type: string
                      effect:
                        type: string
                      tolerationSeconds:
                        type: integer
                        format: int64
                podSecurityContext:
                  type: object
                  properties:
                    runAsUser:
                      type: integer
                      format: int64
                    runAsGroup:
                      type: integer
                      format: int64
                    runAsNonRoot:
                      type: boolean
                    fsGroup:
                      type: integer
                      format: int64
                affinity:
                  type: object
                  properties:
                    nodeAffinity:
                      type: object
                      properties:
                        requiredDuringSchedulingIgnoredDuringExecution:
                          type: object
                          required: [nodeSelectorTerms]
                          x-kubernetes-map-type: atomic
                          properties:
                            nodeSelectorTerms:
                              type: array
                              items:
                                type: object
                                x-kubernetes-map-type: atomic
                                properties:
                                  matchExpressions:
                                    type: array
                                    items: &requirement
                                      type: object
                                      required: [key, operator]
                                      properties:
                                        key:
                                          type: string
                                        operator:
                                          type: string
                                        values:
                                          type: array
                                          items:
                                            type: string
                                  matchFields:
                                    type: array
                                    items: *requirement
                        preferredDuringSchedulingIgnoredDuringExecution:
                          type: array
                          items:
                            type: object
                            required: [preference, weight]
                            properties:
                              weight:
                                type: integer
                                format: int32
                              preference:
                                type: object
                                x-kubernetes-map-type: atomic
                                properties:
                                  matchExpressions:
                                    type: array
                                    items: *requirement
                                  matchFields:
                                    type: array
                                    items: *requirement
{{- end }}
