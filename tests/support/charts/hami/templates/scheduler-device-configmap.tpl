apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-scheduler-device
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: hami-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  device-config.yaml: |-
    nvidia:
      resourceCountName: {{ .Values.resourceName }}
      resourceMemoryName: {{ .Values.resourceMem }}
      resourceMemoryPercentageName: {{ .Values.resourceMemPercentage }}
      resourceCoreName: {{ .Values.resourceCores }}
      resourcePriorityName: {{ .Values.resourcePriority }}
      defaultMemory: 0
      defaultCores: 0
      defaultGPUNum: 1
      deviceSplitCount: {{ .Values.devicePlugin.deviceSplitCount }}
      deviceMemoryScaling: {{ .Values.devicePlugin.deviceMemoryScaling }}
      deviceCoreScaling: {{ .Values.devicePlugin.deviceCoreScaling }}
      runtimeClassName: {{ .Values.devicePlugin.runtimeClassName | quote }}
