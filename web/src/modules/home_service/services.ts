// 六助一护: the services a home visit can be for (codes as the API takes them).
export const SERVICES = [
  { value: 'cleaning', label: '助洁' },
  { value: 'meal', label: '助餐' },
  { value: 'bathing', label: '助浴' },
  { value: 'mobility', label: '助行' },
  { value: 'medical_escort', label: '助医' },
  { value: 'emergency', label: '助急' },
  { value: 'personal_care', label: '照护' },
]
